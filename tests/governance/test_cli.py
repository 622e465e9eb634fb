"""`genroute keys create|list|delete` and `genroute spend` on a configured database."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml

from genroute.cli import main
from genroute.store import LedgerWriter, SpendRecord, Store, hash_key
from genroute.store.repo import utcnow


def test_keys_and_spend_commands(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"general_settings": {"database_url": db_url}}))
    args = ["--config", str(config)]
    assert (
        main(
            [
                "keys",
                "create",
                *args,
                "--alias",
                "ci",
                "--models",
                "demo,other",
                "--max-budget",
                "5",
                "--budget-duration",
                "30d",
                "--rpm",
                "60",
            ]
        )
        == 0
    )
    secret = next(w for w in capsys.readouterr().out.split() if w.startswith("sk-"))

    async def spend() -> None:
        store = Store(db_url)
        writer = LedgerWriter(store)
        for i, model in enumerate(["demo", "demo", "other"]):
            await writer.submit(
                SpendRecord(
                    request_id=f"r{i}",
                    start_time=utcnow(),
                    operation="generateContent",
                    status_code=200,
                    key_hash=hash_key(secret),
                    key_alias="ci",
                    end_user="eve",
                    model_group=model,
                    cost=0.25,
                )
            )
        await writer.aclose()
        await store.aclose()

    asyncio.run(spend())
    assert main(["keys", "list", *args]) == 0
    out = capsys.readouterr().out
    assert "ci" in out and "demo,other" in out and "$0.7500" in out and "$5.0000" in out
    assert secret not in out
    assert main(["spend", *args, "--by", "model", "--since", "7d"]) == 0
    out = capsys.readouterr().out
    assert "demo" in out and "$0.5000" in out and "$0.7500" in out
    assert main(["spend", *args, "--by", "end-user"]) == 0
    assert "eve" in capsys.readouterr().out
    assert main(["keys", "delete", *args, "ci"]) == 0
    assert main(["keys", "delete", *args, "ci"]) == 1
    assert main(["keys", "list", *args]) == 0
    assert "ci" not in capsys.readouterr().out.replace("keys", "")
