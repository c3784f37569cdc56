"""The pure analysis engine: transcripts in, results, usage and cost out.

It knows nothing of Django, the database, the queues or the settings (an import-linter contract in
pyproject.toml keeps it so): its callers (analysis.analyze, the worker) build the provider clients
(analysis.clients) and the run's configuration from settings and hand them in. Transcripts and captions are
parsed here, turned into prompts, chunked and planned, run through the providers with retries and limits,
checked (structured answers, citations) and priced from the model catalogue.
"""
