"""The Space's server, on gradio: requests refused in one line (an upload the library refuses, a malformed
API payload, an endpoint the app does not have), the upload size limit, and serving the page.

`spaces/app.py` builds the page and its events; this is what stands between them and HTTP. It imports gradio
(the `space` extra), so only the app imports it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import gradio as gr
import pydantic
from fastapi.responses import JSONResponse
from gradio.route_utils import FnIndexInferError

from tl_hub.errors import RequestRefused, TLHubError
from tl_hub.inference.serving import MAX_FILE_BYTES

# The Space's own log, where its refusals have always been written: one line each.
logger = logging.getLogger("spaces.app")


def refusal(message: str) -> gr.Error:
    """The error a request gets for a user's mistake: its message goes to the caller, one line to the log
    (gradio would print a traceback for each)."""
    logger.info("refused: %s", message)
    return gr.Error(message, print_exception=False)


@contextmanager
def refusals() -> Iterator[None]:
    """A request the library refuses (no model, an unreadable upload) becomes the caller's gr.Error."""
    try:
        yield
    except RequestRefused as e:
        raise refusal(str(e)) from None


class SpaceBlocks(gr.Blocks):
    """gr.Blocks whose events refuse a malformed API payload (too few values, a value that is not a file) with
    one line, as they refuse a bad upload, instead of gradio's multi-line validation error and a server-side
    traceback. (`preprocess_data` is where gradio checks the payload, with `preprocess=False` too.)"""

    async def preprocess_data(
        self, block_fn: Any, inputs: list[Any], state: Any, explicit_call: bool = False
    ):
        endpoint = f"/{block_fn.api_name}" if block_fn.api_name else "this event"
        if not isinstance(inputs, list) or len(inputs) < len(block_fn.inputs):
            given = len(inputs) if isinstance(inputs, list) else type(inputs).__name__
            raise refusal(
                f"The request holds {given} input value(s); {endpoint} takes {len(block_fn.inputs)}, an "
                'image file: send {"data": [FILE]}, e.g. with gradio_client.handle_file(PATH_OR_URL).'
            )
        try:
            return await super().preprocess_data(block_fn, inputs, state, explicit_call)
        except pydantic.ValidationError as e:
            first = e.errors()[0]
            raise refusal(
                f"The request's input to {endpoint} is not an image file ({first['msg']}; given: "
                f"{type(first.get('input')).__name__}): send one with gradio_client.handle_file(PATH_OR_URL)."
            ) from None


def unknown_endpoint(demo: gr.Blocks) -> Any:
    """The HTTP answer to a call of an endpoint this app does not have: 404 and the ones it has, one line in
    the log (gradio answers 500, with a traceback in the server log)."""
    names = ", ".join(
        f"/{fn.api_name}" for fn in demo.fns.values() if fn.api_name and fn.api_visibility == "public"
    )

    async def answer(request: Any, error: Exception) -> JSONResponse:
        message = (
            f"The request names no endpoint of this app ({request.url.path}): its endpoints are {names}."
        )
        logger.info("refused: %s", message)
        return JSONResponse({"error": message}, status_code=404)

    return answer


def serve(demo: gr.Blocks, host: str | None = None, port: int | None = None, block: bool = True) -> str:
    """Serve `demo` (gradio's host and port unless given) with the upload size limit; returns its URL.

    `block=False` returns once the server is up, for tests and benchmarks; `demo.close()` stops it. A port
    that cannot be served is a `TLHubError`.
    """
    refuse = unknown_endpoint(demo)
    try:
        _, url, _ = demo.launch(
            server_name=host,
            server_port=port,
            max_file_size=MAX_FILE_BYTES,
            show_error=True,  # an error's message reaches API callers too, not only the page
            prevent_thread_lock=not block,
            quiet=not block,
            app_kwargs={"exception_handlers": {FnIndexInferError: refuse, KeyError: refuse}},
        )
    except OSError as e:  # taken between port_problem's look and now
        raise TLHubError(f"cannot serve on port {port or 'from 7860'} ({str(e).splitlines()[0]})") from None
    return url
