/**
 * Three ways a component uses flags: a flag-driven banner, an A/B test (`useABTest`, which
 * records the exposure when it reads the flag and sends conversions with `track`), and the
 * provider's status. Every component re-renders by itself when the server pushes a change
 * (the stock provider's OFREP event stream), with no reload.
 */

import { Suspense, useEffect } from "react";
import { useFlag, useOpenFeatureClientStatus } from "@openfeature/react-sdk";
import { useABTest } from "@flagstaff/web/react";

function Banner() {
  const { value } = useFlag("banner", false);
  return (
    <p data-testid="banner" data-value={String(value)} className={value ? "banner on" : "banner"}>
      {value ? "Spring sale: 20 % off everything" : "No banner today"}
    </p>
  );
}

function Headline() {
  const { value } = useFlag("headline", "Welcome");
  return <h1 data-testid="headline">{value}</h1>;
}

function CheckoutExperiment() {
  const { variant, value, inExperiment, track } = useABTest("checkout-button", "control");
  return (
    <section>
      <button
        type="button"
        data-testid="checkout"
        data-variant={variant}
        data-in-experiment={String(inExperiment)}
        onClick={() => track("checkout")}
      >
        {value}
      </button>
    </section>
  );
}

/** The provider's state; outside the Suspense boundary, so it shows an error too. */
function ProviderStatus() {
  const status = useOpenFeatureClientStatus();
  useEffect(() => {
    document.body.dataset.flags = status;
  }, [status]);
  return <p data-testid="status">Flags: {status}</p>;
}

export function App({ user }: { user: string }) {
  return (
    <main>
      {/* Flag components wait for the first answers rather than painting defaults. */}
      <Suspense fallback={<p data-testid="loading">Loading flags…</p>}>
        <Headline />
        <p data-testid="user">Signed in as {user}</p>
        <Banner />
        <CheckoutExperiment />
      </Suspense>
      <ProviderStatus />
    </main>
  );
}
