"""The JSON-lines protocol between the QGIS plugin and the backend process (docs/protocol.md)."""
from .messages import PROTOCOL_VERSION, ProtocolError, decode_request, encode_event

__all__ = ["PROTOCOL_VERSION", "ProtocolError", "decode_request", "encode_event"]
