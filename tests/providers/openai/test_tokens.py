"""The local countTokens estimate: text against counts measured with o200k_base, and media."""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path

import pytest

from genroute.providers.openai import tokens
from genroute.wire import Blob, CountTokensRequest

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "openai"
SAMPLES = json.loads((FIXTURES / "token_counts.json").read_text())["samples"]


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: s["kind"])
def test_text_estimate_is_within_20_percent_of_o200k(sample: dict[str, object]) -> None:
    text, actual = str(sample["text"]), int(str(sample["o200k_base"]))
    assert 0.8 <= tokens.text_tokens(text) / actual <= 1.2


def png(width: int, height: int) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + struct.pack(">II", width, height)


def jpeg(width: int, height: int) -> bytes:
    app0 = b"\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof = b"\xff\xc0\x00\x11\x08" + struct.pack(">HH", height, width) + b"\x03" + b"\x00" * 9
    return b"\xff\xd8" + app0 + sof


def test_image_sizes_and_openai_tile_formula() -> None:
    assert tokens.image_size(png(1024, 768)) == (1024, 768)
    assert tokens.image_size(jpeg(640, 480)) == (640, 480)
    assert tokens.image_size(b"GIF89a" + struct.pack("<HH", 10, 20)) == (10, 20)
    assert tokens.image_size(b"nope") is None
    assert tokens.image_tokens(1024, 1024) == 765
    assert tokens.image_tokens(512, 512) == 255
    assert tokens.image_tokens(2048, 4096) == 1105
    blob = Blob(mime_type="image/png", data=base64.b64encode(png(512, 512)).decode())
    assert tokens.blob_tokens(blob) == ("IMAGE", 255)


def test_estimate_counts_messages_media_and_tools() -> None:
    wav = b"RIFF" + b"\x00" * 24 + (16000).to_bytes(4, "little") + b"\x00" * 31_968
    request = CountTokensRequest.model_validate(
        {
            "generateContentRequest": {
                "contents": [
                    {"role": "user", "parts": [{"text": "hello world"}]},
                    {
                        "role": "user",
                        "parts": [
                            {"inlineData": {"mimeType": "audio/wav", "data": base64.b64encode(wav).decode()}},
                            {"fileData": {"fileUri": "https://x/cat.png", "mimeType": "image/png"}},
                        ],
                    },
                ],
                "systemInstruction": {"parts": [{"text": "be brief"}]},
                "tools": [{"functionDeclarations": [{"name": "f", "description": "does f"}]}],
            }
        }
    )  # fmt: skip
    result = tokens.estimate(request)
    details = {d.modality: d.token_count for d in result.prompt_tokens_details or []}
    assert details["AUDIO"] == 20 and details["IMAGE"] == 765
    assert details["TEXT"] == 3 * 3 + 2 + 2 + 3 + 8 + tokens.text_tokens("f does f {}")
    assert result.total_tokens == sum(details.values())
