/**
 * React hooks on top of `@openfeature/react-sdk`: the A/B test a component renders and the
 * conversions it reports.
 *
 * ```tsx
 * function CheckoutButton() {
 *   const { variant, track } = useABTest("checkout-button", "control");
 *   return <button onClick={() => track("checkout")}>{variant === "green" ? "Buy now" : "Checkout"}</button>;
 * }
 * ```
 *
 * Reading the flag is what records the exposure (the {@link FlagstaffProvider}'s hook, once per
 * user, variant and page session); `track` sends a conversion for the same user through
 * OpenFeature's `track()`.
 */

import { useCallback } from "react";
import { useFlag, useOpenFeatureClient } from "@openfeature/react-sdk";

export interface ABTest {
  /** The variant this user is assigned (the default while the provider is not ready). */
  variant: string;
  /** The flag's value for that variant. */
  value: string;
  /** Whether a running experiment assigned the variant (only those exposures count). */
  inExperiment: boolean;
  /** Record a conversion (no value) or a numeric metric for this user. */
  track: (metric: string, value?: number) => void;
}

/** Send conversions from any component: `const track = useTrack(); track("signup")`. */
export function useTrack(): (metric: string, value?: number) => void {
  const client = useOpenFeatureClient();
  return useCallback(
    (metric: string, value?: number) => client.track(metric, value === undefined ? undefined : { value }),
    [client],
  );
}

/** The variant of a string experiment flag for the current user, re-rendered on changes. */
export function useABTest(flagKey: string, defaultVariant: string): ABTest {
  const flag = useFlag(flagKey, defaultVariant);
  const track = useTrack();
  return {
    variant: flag.variant ?? defaultVariant,
    value: flag.value,
    inExperiment: flag.details.flagMetadata?.inExperiment === true,
    track,
  };
}
