"""A headless Streamlit client that speaks the browser's websocket protocol.

The load-test issue allows "real browser contexts with Playwright, or the Streamlit
websocket protocol". On a small machine ten Chromium instances cost more CPU than the
server they are meant to measure, so the browser numbers mostly time the browsers. This
client does what the frontend does on the wire and nothing else (no rendering), so the
measured latency is the server's.

One ``StreamlitSession`` is one browser tab, i.e. one server-side session:

1. ``GET /_stcore/health``: the server sets the ``_streamlit_xsrf`` cookie there (the
   page HTML does not); the frontend reads the same cookie before connecting.
2. Websocket ``/_stcore/stream`` with subprotocols ``("streamlit", <xsrf cookie>)``, an
   ``Origin`` header and the cookie, as the frontend's ``getSessionTokens`` does.
3. ``BackMsg.rerun_script`` with the page name taken from the URL path (``Classify`` for
   ``pages/1_Classify.py``) and an empty page hash. The server answers with
   ``new_session`` (session id), ``navigation`` (the hash of the page it resolved),
   deltas, then ``script_finished``. Later reruns send that page hash and no page name,
   again as the frontend does.
4. A file upload: ``BackMsg.file_urls_request`` -> ``ForwardMsg.file_urls_response``,
   a multipart ``PUT`` to the returned ``upload_url`` (form field named after the file,
   ``X-Xsrftoken`` header plus cookie), then ``rerun_script`` whose widget states hold
   the ``file_uploader_state_value`` for the uploader.
5. A button click: ``rerun_script`` with a one-off ``trigger_value`` for the button.

Every rerun re-sends the widget states this client has set, like the frontend's widget
manager; widgets it never touched are left out, and the server keeps their values.
``cached_message_hashes`` is always empty: a fresh tab has nothing in its forward-message
cache, so the server never answers with ``ref_hash`` references (one would be an error).
"""

from __future__ import annotations

import asyncio
import mimetypes
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import requests
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ClientState_pb2 import ClientState
from streamlit.proto.Common_pb2 import FileURLs
from streamlit.proto.Element_pb2 import Element
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState
from websockets.asyncio.client import connect

XSRF_COOKIE = "_streamlit_xsrf"
# Elements whose body is text a user reads (headings, markdown, captions, alerts).
TEXT_KINDS = {"heading", "markdown", "alert"}
RUN_DONE = {ForwardMsg.FINISHED_SUCCESSFULLY, ForwardMsg.FINISHED_WITH_COMPILE_ERROR}


def _strings(message) -> list[str]:
    """Every string field of a protobuf message, recursively: labels, captions, bodies."""
    found = []
    for descriptor, value in message.ListFields():
        values = value if descriptor.is_repeated else [value]
        for item in values:
            if isinstance(item, str):
                found.append(item)
            elif hasattr(item, "ListFields"):
                found += _strings(item)
    return found


@dataclass
class Run:
    """What one script run sent: its elements with their arrival times (perf_counter)."""

    elements: list[tuple[float, Element]] = field(default_factory=list)
    finished_at: float | None = None
    status: int | None = None

    def text(self) -> str:
        return "\n".join(s for _, element in self.elements for s in _strings(element))

    def shown_at(self, pattern: re.Pattern) -> float | None:
        """Arrival time of the first heading/markdown/alert whose body matches."""
        for at, element in self.elements:
            kind = element.WhichOneof("type")
            if kind in TEXT_KINDS and pattern.search(getattr(element, kind).body):
                return at
        return None

    @property
    def exceptions(self) -> list[str]:
        return [f"{element.exception.type}: {element.exception.message}"
                for _, element in self.elements if element.WhichOneof("type") == "exception"]

    @property
    def alerts(self) -> list[str]:
        return [element.alert.body for _, element in self.elements
                if element.WhichOneof("type") == "alert"]


class StreamlitSession:
    """One browser tab: open a page, upload files, click buttons, read what comes back.

    Use as ``async with StreamlitSession(url, "Classify") as session: ...``; the page's
    first run is in ``session.first_run``.
    """

    def __init__(self, base_url: str, page: str = "", timeout: float = 120.0):
        self.base_url = base_url.rstrip("/")
        self.page = page
        self.timeout = timeout
        self.session_id = ""
        self.page_hash = ""
        self.first_run: Run | None = None
        self.runs: list[Run] = []
        self._xsrf = ""
        self._ws = None
        self._widgets: dict[str, WidgetState] = {}  # what the widget manager would send
        self._ids: dict[str, str] = {}  # widget key or label -> widget id

    async def __aenter__(self) -> StreamlitSession:
        await self.open()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def open(self) -> Run:
        self._xsrf = await asyncio.to_thread(self._fetch_xsrf_cookie)
        ws_url = "ws" + self.base_url.removeprefix("http") + "/_stcore/stream"
        # Browsers send no keepalive pings and wait long for a busy server to accept;
        # websockets' defaults (pings every 20 s, 10 s to open) would drop sessions that
        # a browser keeps whenever the server's event loop stalls under load.
        self._ws = await connect(
            ws_url, subprotocols=["streamlit", self._xsrf], origin=self.base_url,
            additional_headers={"Cookie": f"{XSRF_COOKIE}={self._xsrf}"},
            ping_interval=None, open_timeout=self.timeout,
            max_size=64 * 2**20)  # plotly specs can exceed the 1 MiB default
        # Only the first run names the page; later ones send the hash from navigation.
        await self._send_rerun(page_name=self.page)
        self.first_run = await self.read_run()
        return self.first_run

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()

    def text(self) -> str:
        """Everything this session has been sent so far."""
        return "\n".join(run.text() for run in self.runs)

    def exceptions(self) -> list[str]:
        """Messages of the exceptions shown so far (a traceback on the page)."""
        return [message for run in self.runs for message in run.exceptions]

    def widget_id(self, name: str) -> str:
        """A widget's id by its ``key=`` or its label (the last widget seen wins)."""
        if name not in self._ids:
            raise LookupError(f"no widget {name!r} on the page (have {sorted(self._ids)})")
        return self._ids[name]

    async def upload(self, key: str, path: Path) -> Run:
        """Put ``path`` into the file uploader ``key`` and return the rerun it causes."""
        widget = self.widget_id(key)
        data = path.read_bytes()
        urls = await self._request_file_urls([path.name])
        await asyncio.to_thread(self._put_file, urls.upload_url, path.name, data)
        state = WidgetState(id=widget)
        info = state.file_uploader_state_value.uploaded_file_info.add()
        info.file_id, info.name, info.size = urls.file_id, path.name, len(data)
        info.file_urls.CopyFrom(urls)
        self._widgets[widget] = state
        await self._send_rerun()
        return await self.read_run()

    async def click(self, name: str) -> Run:
        """Press a button (by key or label); the trigger is sent once, not remembered."""
        trigger = WidgetState(id=self.widget_id(name), trigger_value=True)
        await self._send_rerun(extra=(trigger,))
        return await self.read_run()

    async def read_run(self) -> Run:
        """Read until the current run has finished (runs cut short for a rerun go on)."""
        run = Run()
        self.runs.append(run)
        async with asyncio.timeout(self.timeout):
            while run.finished_at is None:
                msg = await self._receive()
                kind = msg.WhichOneof("type")
                if kind == "new_session":
                    self._on_new_session(msg.new_session)
                elif kind == "navigation":
                    # The pages/ folder runs through st.navigation: the page actually
                    # shown comes here, new_session only names the main script.
                    self.page_hash = msg.navigation.page_script_hash
                elif kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
                    self._note_widget(msg.delta.new_element)
                    run.elements.append((time.perf_counter(), msg.delta.new_element))
                elif kind == "page_not_found":
                    raise LookupError(f"no page {msg.page_not_found.page_name!r}")
                elif kind == "script_finished" and msg.script_finished in RUN_DONE:
                    run.finished_at, run.status = time.perf_counter(), msg.script_finished
        return run

    # -- HTTP side -------------------------------------------------------------------

    def _fetch_xsrf_cookie(self) -> str:
        response = requests.get(f"{self.base_url}/_stcore/health", timeout=self.timeout)
        response.raise_for_status()
        token = response.cookies.get(XSRF_COOKIE)
        if not token:
            raise RuntimeError("the server set no XSRF cookie (server.enableXsrfProtection?)")
        return token

    def _put_file(self, upload_url: str, name: str, data: bytes) -> None:
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        response = requests.put(
            self.base_url + upload_url, files={name: (name, data, kind)},
            headers={"X-Xsrftoken": self._xsrf, "Origin": self.base_url},
            cookies={XSRF_COOKIE: self._xsrf}, timeout=self.timeout)
        response.raise_for_status()

    # -- websocket side --------------------------------------------------------------

    async def _receive(self) -> ForwardMsg:
        msg = ForwardMsg()
        msg.ParseFromString(await self._ws.recv())
        if msg.WhichOneof("type") == "ref_hash":
            raise RuntimeError("server sent a cached-message reference; none were claimed")
        return msg

    async def _send(self, msg: BackMsg) -> None:
        await self._ws.send(msg.SerializeToString())

    async def _send_rerun(self, page_name: str = "",
                          extra: tuple[WidgetState, ...] = ()) -> None:
        state = ClientState(page_name=page_name, page_script_hash=self.page_hash)
        state.widget_states.widgets.extend([*self._widgets.values(), *extra])
        info = state.context_info
        info.timezone, info.timezone_offset, info.locale = "UTC", 0, "en-US"
        info.url, info.is_embedded = f"{self.base_url}/{self.page}", False
        await self._send(BackMsg(rerun_script=state))

    async def _request_file_urls(self, names: list[str]) -> FileURLs:
        request_id = str(uuid.uuid4())
        await self._send(BackMsg(file_urls_request={
            "request_id": request_id, "file_names": names, "session_id": self.session_id}))
        async with asyncio.timeout(self.timeout):
            while True:
                msg = await self._receive()
                response = msg.file_urls_response
                if msg.WhichOneof("type") == "file_urls_response" and \
                        response.response_id == request_id:
                    break
        if response.error_msg:
            raise RuntimeError(f"file URLs refused: {response.error_msg}")
        return response.file_urls[0]

    def _on_new_session(self, new_session) -> None:
        self.page_hash = new_session.page_script_hash
        if new_session.initialize.session_id:
            self.session_id = new_session.initialize.session_id

    def _note_widget(self, element: Element) -> None:
        kind = element.WhichOneof("type")
        inner = getattr(element, kind) if kind else None
        widget = getattr(inner, "id", "")
        if not isinstance(widget, str) or not widget.startswith("$$ID-"):
            return
        # Ids are "$$ID-<hash>-<key>", with key "None" for widgets without one. Labels
        # are registered too, since the browser driver clicks buttons by their text.
        key = widget.split("-", 2)[2]
        for name in (key if key != "None" else "", getattr(inner, "label", "")):
            if name:
                self._ids[name] = widget
