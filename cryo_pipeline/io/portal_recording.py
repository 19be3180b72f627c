"""Record and replay the CryoET Data Portal client's GraphQL responses (its network boundary).

The ``cryoet-data-portal`` client sends every lookup through
``Client.get_client().execute(request)``. :class:`RecordingPortalClient` passes the
requests to the real portal and keeps each response; :class:`ReplayPortalClient`
answers the same requests from a saved recording, so the resolver runs unchanged,
with no network, on exactly what the portal sent. A request whose response is not
in the recording, or a recorded item that lacks a field the client now asks for
(a newer client), is an error naming the request: record again.

Record (with a network)::

    python -m cryo_pipeline.io.portal_recording recording.json tiltseries run:333 tomogram tomogram:771

File layout: ``{"client_version": ..., "responses": {"<root>(<arguments>)": [items]}}``,
items as the GraphQL server returns them (camelCase field names).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import cryoet_data_portal
from graphql import print_ast

from cryo_pipeline.io.atomic import atomic_write_text

__all__ = ["RecordingPortalClient", "ReplayPortalClient", "request_key"]


def _selection(request):
    document = request.document if hasattr(request, "document") else request
    return document.definitions[0].selection_set.selections[0]


def request_key(request) -> str:
    """``runs(where: { id: { _eq: 333 } })``: the root field and its arguments, one line."""
    selection = _selection(request)
    arguments = ", ".join(print_ast(argument) for argument in selection.arguments)
    return f"{selection.name.value}({arguments})"


def _requested_fields(request) -> list[str]:
    return [field.name.value for field in _selection(request).selection_set.selections]


class _Replay:
    def __init__(self, responses: dict[str, list[dict[str, Any]]], path: Path, rewrite: dict[str, str]):
        self._responses, self._path, self._rewrite = responses, path, rewrite

    def execute(self, request):
        key = request_key(request)
        if key not in self._responses:
            raise ValueError(f"{self._path}: no recorded portal response for {key}; record it again with "
                             "python -m cryo_pipeline.io.portal_recording")
        root = _selection(request).name.value
        items = self._responses[key]
        for item in items:
            missing = [f for f in _requested_fields(request) if f not in item]
            if missing:
                raise ValueError(f"{self._path}: the recorded response for {key} lacks {missing} that this "
                                 f"cryoet-data-portal {cryoet_data_portal.__version__} asks for; record it again")
        return {root: [self._rewritten(item) for item in items]}

    def _rewritten(self, item: dict[str, Any]) -> dict[str, Any]:
        out = dict(item)
        for name, value in item.items():
            if isinstance(value, str):
                for old, new in self._rewrite.items():
                    value = value.replace(old, new)
                out[name] = value
        return out


class ReplayPortalClient(cryoet_data_portal.Client):
    """A portal client that answers from a recording; ``rewrite`` maps URL prefixes (e.g. to a local server)."""

    def __init__(self, recording: str | os.PathLike[str], *, rewrite: dict[str, str] | None = None):
        super().__init__(url="http://recorded.invalid/graphql")
        self._path = Path(recording)
        self._responses = json.loads(self._path.read_text())["responses"]
        self._rewrite = dict(rewrite or {})

    def get_client(self):  # noqa: D102 - the client's own boundary
        return _Replay(self._responses, self._path, self._rewrite)


class _Recorder:
    def __init__(self, inner, responses):
        self._inner, self._responses = inner, responses

    def execute(self, request):
        response = self._inner.execute(request)
        self._responses[request_key(request)] = response[_selection(request).name.value]
        return response


class RecordingPortalClient(cryoet_data_portal.Client):
    """The real client, keeping every response; :meth:`save` writes the recording."""

    def __init__(self, url: str | None = None):
        super().__init__(url=url)
        self.responses: dict[str, list[dict[str, Any]]] = {}

    def get_client(self):  # noqa: D102 - the client's own boundary
        return _Recorder(super().get_client(), self.responses)

    def save(self, path: str | os.PathLike[str]) -> None:
        record = {"client_version": cryoet_data_portal.__version__, "responses": self.responses}
        atomic_write_text(path, json.dumps(record, indent=1, sort_keys=True) + "\n")


def main(argv: list[str] | None = None) -> int:
    """``OUT.json (DATA_KIND SOURCE)...``: resolve each pair against the live portal and save the responses."""
    from cryo_pipeline.io.portal import resolve_portal_source

    args = sys.argv[1:] if argv is None else argv
    if len(args) < 3 or len(args) % 2 == 0:
        print(__doc__, file=sys.stderr)
        return 2
    client = RecordingPortalClient()
    for data_kind, source in zip(args[1::2], args[2::2], strict=True):
        print(resolve_portal_source(source, data_kind=data_kind, client=client))
    client.save(args[0])
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
