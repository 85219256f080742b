"""The OpenAI Responses API (``POST /v1/responses``, ``GET`` / ``DELETE /v1/responses/{id}``) on the chat pipeline.

- :mod:`.request`   a Responses body checked and translated into the chat completions body the pipeline runs
- :mod:`.output`    the pipeline's pieces -> output items (reasoning, message, function_call) and stream events
- :mod:`.store`     stored responses (``store: true``) per team, in the ledger's database, until they expire
- :mod:`.handlers`  the aiohttp handlers; :func:`add_responses_routes` wires them into the app
"""

from hermes_proxy.responses.handlers import RESPONSE_STORE, add_responses_routes

__all__ = ["RESPONSE_STORE", "add_responses_routes"]
