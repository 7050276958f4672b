"""The scoring service (issue 7): `clickintent serve --bundle DIR` answers embeddings and intents over HTTP.

FastAPI + uvicorn (extra `serve`; ONNX Runtime for the encoder with extra `onnx`). Modules: settings (the
one settings object), schemas (pydantic requests/responses), clean (redaction as ingest does it), model
(the loaded bundle and its encoder runtimes), onnx (the ONNX Runtime engine), batcher (the inference thread),
live (live sessions), metrics (Prometheus), service (state and reload), deps (Annotated dependencies),
protocol (uvicorn's HTTP protocol with a header deadline and a connection bound),
routes/ (one router per resource), app (the application). docs/SERVICE.md describes the HTTP surface.
What it leaves out: TLS (put a proxy in front), rate limiting, live sessions shared across processes.

Import `create_app` from clickintent.serve.app; this package's import stays light so the CLI starts fast.
"""
