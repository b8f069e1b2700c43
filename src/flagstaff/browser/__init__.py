"""What serving pages requires, without a database: shared by the server and the relay.

A page holds a client-side SDK key and is held to its environment's allowed origins and secure
mode, sees ``client_side`` flags only, and follows OFREP event streams.  The decisions live
here, pure or ASGI-only, and take their facts (each environment's origins and secure-mode
secret) from whoever holds them: the server reads them from its store
(``flagstaff.server.browser``), a relay learns them from its upstream (``flagstaff.relay``).

* :mod:`.origins`: origins, each environment's access settings and the questions asked of them;
* :mod:`.cors`: preflights and CORS headers, refusals logged with the setting that fixes them;
* :mod:`.guard`: a request's origin and secure-mode checks once its key names the environment;
* :mod:`.beacons`: a client-side key in an event batch's body (``sendBeacon``);
* :mod:`.visibility`: client-side keys see ``client_side`` flags only;
* :mod:`.refetch`: which changes concern which pages (OFREP ``refetchEvaluation``);
* :mod:`.stream_tokens`: the signed event-stream URLs.

docs/browser.md is the guide; docs/relay.md says what a relay adds.
"""
