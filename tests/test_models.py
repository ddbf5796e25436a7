"""Model information (issue 10): the shipped table, its matching rules, listings
merged with it over loopback servers, providers without a listing, and the
request check that refuses what a model cannot take."""

from __future__ import annotations

import configparser
import json
from pathlib import Path

import attrs
import pytest

from llmlib import ChatCompletionRequest, Content, Message, Tool, errors, models
from llmlib.providers import SPECS
from llmlib.types import ModelInfo
from tests.conftest import make_client, wire

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "llmlib" / "data" / "models.json"


def _json(reply, obj):
    reply.send(200, json.dumps(obj).encode(), [("Content-Type", "application/json")], mode="length")


# ------------------------------------------------------------ the table


def test_every_row_cites_a_source_and_has_sane_values():
    rows = json.loads(DATA.read_text())["models"]
    assert len(rows) >= 40
    allowed = {f.name for f in attrs.fields(models.KnownModel)}
    for row in rows:
        where = f"{row['provider']}/{row['id']}"
        assert set(row) <= allowed, where
        assert row["provider"] in SPECS, where
        assert row["source"].startswith("https://") and " " not in row["source"], where
        assert isinstance(row["display_name"], str) and row["display_name"], where
        for name in ("context_window", "max_output_tokens"):
            value = row[name]
            assert value is None or (type(value) is int and 1024 <= value <= 10_000_000), where
        if row["context_window"] and row["max_output_tokens"]:
            assert row["max_output_tokens"] <= row["context_window"], where
        for name in ("supports_streaming", "supports_tools", "supports_vision", "supports_audio",
                     "supports_reasoning"):
            assert row[name] in (True, False, None), where
    # The brief's families are all there.
    ids = {(r["provider"], r["id"]) for r in rows}
    for key in [("openai", "gpt-4o"), ("openai", "gpt-4o-mini"), ("openai", "gpt-4.1"), ("openai", "o3"),
                ("openai", "o4-mini"), ("openai", "gpt-5"), ("anthropic", "claude-sonnet-4-5"),
                ("anthropic", "claude-opus-4-1"), ("anthropic", "claude-haiku-4-5"),
                ("anthropic", "claude-3-7-sonnet-20250219"), ("gemini", "gemini-2.5-pro"),
                ("gemini", "gemini-2.0-flash"), ("gemini", "gemini-3-pro-preview"),
                ("groq", "llama-3.3-70b-versatile"), ("groq", "openai/gpt-oss-120b"), ("deepseek", "deepseek-chat"),
                ("deepseek", "deepseek-reasoner"), ("mistral", "magistral-medium-2509"), ("xai", "grok-4-0709"),
                ("cohere", "command-a-03-2025"), ("local", "smollm2-135m"), ("local", "gemma-3-270m")]:
        assert key in ids, key


def test_ids_and_aliases_are_unique_per_provider():
    seen = {}
    for row in models.known_models():
        for name in (row.id, *row.aliases):
            key = (row.provider, name.lower())
            assert key not in seen, f"{key} in {seen.get(key)} and {row.id}"
            seen[key] = row.id


def test_the_table_is_package_data():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    assert "data/models.json" in config["options.package_data"]["llmlib"]
    assert models.known_models("local")[0].provider == "local"  # read through importlib.resources


def test_local_rows_agree_with_the_local_protocol():
    from llmlib import local

    for name in local.MODELS:
        row = models.lookup("local", name)
        described = local.describe(ModelInfo(name, "local"))
        assert row is not None and row.context_window == described.context_window == 2048
        assert row.supports_tools is described.supports_tools is False
        assert row.supports_vision is described.supports_vision is False


# ------------------------------------------------------------ matching


@pytest.mark.parametrize("provider, model, row_id", [
    ("openai", "gpt-4o", "gpt-4o"),
    ("openai", "GPT-4o", "gpt-4o"),
    ("openai", "gpt-4o-2024-08-06", "gpt-4o"),                  # dated snapshot
    ("openai", "gpt-4o-2024-05-13", "gpt-4o-2024-05-13"),       # its own row wins (4,096 output tokens)
    ("openai", "gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
    ("openai", "o3-2025-04-16", "o3"),
    ("openai", "gpt-5-2025-08-07", "gpt-5"),
    ("anthropic", "claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
    ("anthropic", "claude-sonnet-4-20250514", "claude-sonnet-4-0"),  # an alias
    ("anthropic", "claude-3-7-sonnet-latest", "claude-3-7-sonnet-20250219"),
    ("gemini", "gemini-2.0-flash-001", "gemini-2.0-flash"),
    ("gemini", "gemini-2.0-flash-lite-001", "gemini-2.0-flash-lite"),
    ("gemini", "models/gemini-2.5-pro", "gemini-2.5-pro"),
    ("groq", "openai/gpt-oss-120b", "openai/gpt-oss-120b"),
    ("xai", "grok-4", "grok-4-0709"),
    ("openrouter", "openai/gpt-4o", "gpt-4o"),                   # the vendor's rows
    ("openrouter", "openai/gpt-4o-2024-11-20", "gpt-4o"),
    ("openrouter", "anthropic/claude-sonnet-4.5", "claude-sonnet-4-5"),
    ("openrouter", "google/gemini-2.5-flash", "gemini-2.5-flash"),
])
def test_matching_rules(provider, model, row_id):
    row = models.lookup(provider, model)
    assert row is not None and row.id == row_id


@pytest.mark.parametrize("provider, model", [
    ("openai", "gpt-4o-audio-preview"),          # a different model, not a snapshot
    ("openai", "gpt-4o-2024-08"),                 # not a date
    ("openai", "gpt-5-chat-latest"),
    ("openai", "claude-sonnet-4-5"),              # provider-scoped
    ("groq", "gpt-4o"),
    ("azure", "gpt-4o"),                          # Azure names deployments freely: never matched
    ("openrouter", "gpt-4o"),                     # no vendor
    ("openrouter", "meta-llama/llama-3.3-70b-instruct"),
    ("anthropic", "claude-sonnet-4-5-2025"),
    ("gemini", "gemini-2.5-flash-preview-05-20"),  # previews are not stable versions
    ("mistral", "mistral-large-latest"),          # -latest moves: only dated ids have rows
    ("openai", ""),
])
def test_no_match_is_no_guess(provider, model):
    assert models.lookup(provider, model) is None


# ------------------------------------------------------------ ModelInfo


def test_model_info_fields_and_the_old_context_length_name():
    info = ModelInfo("m", "p", "me", 1, 4096, True, False, None, {"x": 1})  # the old positional order
    assert info.context_window == info.context_length == 4096 and info.raw == {"x": 1}
    assert (info.supports_audio, info.supports_reasoning, info.max_output_tokens, info.display_name) == (None,) * 4
    assert ModelInfo("m", context_length=8).context_window == 8
    assert attrs.evolve(info, context_length=2048).context_window == 2048  # what local.describe does
    assert attrs.evolve(info, context_window=10).context_length == 10
    assert str(info) == "m" and info == ModelInfo("m", "p", "me", 1, 4096, True, False, None)
    with pytest.raises(AttributeError):
        info.context_length = 1


# ------------------------------------------------------------ listings merged with the table


def test_openai_listing_gets_capabilities_from_the_table(server):
    listing = {"object": "list", "data": [
        {"id": "gpt-4o", "object": "model", "created": 1715367049, "owned_by": "system"},
        {"id": "gpt-4o-2024-08-06", "object": "model", "created": 1722814719, "owned_by": "system"},
        {"id": "ft:gpt-4o-mini:acme::abc", "object": "model", "created": 1, "owned_by": "acme"},
    ]}
    server.handler = lambda req, reply: _json(reply, listing)
    with make_client(server, "openai") as client:
        by_id = {m.id: m for m in client.list_models()}
        info = client.model_info("gpt-4o-2024-08-06")
        not_listed = client.model_info("o3")          # in the table, not in this account's listing
        with pytest.raises(errors.NotFoundError, match="model table"):
            client.model_info("gpt-9")
    assert info.owned_by == "system" and info.created == 1722814719  # from the listing
    assert (info.context_window, info.max_output_tokens) == (128000, 16384)  # from the table
    assert (info.supports_tools, info.supports_vision, info.supports_audio, info.supports_reasoning) == \
        (True, True, False, False)
    assert by_id["gpt-4o"].display_name == "GPT-4o"
    fine_tuned = by_id["ft:gpt-4o-mini:acme::abc"]
    assert fine_tuned.supports_vision is None and fine_tuned.context_window is None  # unknown, not guessed
    assert not_listed.id == "o3" and not_listed.supports_reasoning is True and not_listed.raw == {}
    assert all(r.path == "/v1/models" for r in server.requests)


def test_gemini_listing_limits_win_over_the_table(server):
    recorded = json.loads(wire("models", "gemini_models_list.json").read_text())
    recorded.pop("nextPageToken", None)
    for entry in recorded["models"]:
        if entry["name"] == "models/gemini-2.0-flash":
            entry["outputTokenLimit"] = 12345           # the listing says otherwise than the table
    server.handler = lambda req, reply: _json(reply, recorded)
    with make_client(server, "gemini") as client:
        flash = client.model_info("gemini-2.5-flash")
        older = client.model_info("gemini-2.0-flash")
    assert (flash.context_window, flash.max_output_tokens) == (1048576, 65536)
    assert flash.supports_reasoning is True and flash.display_name == "Gemini 2.5 Flash"  # listing: "thinking"
    assert (flash.supports_vision, flash.supports_audio, flash.supports_tools) == (True, True, True)  # table
    assert older.max_output_tokens == 12345
    assert older.supports_reasoning is None  # neither says: the table records "experimental" as unknown


def test_anthropic_listing_merged_with_the_table(server):
    docs_example = json.loads(wire("models", "anthropic_models_list_docs.json").read_text())
    docs_example["has_more"] = False
    rich = {"id": "claude-sonnet-4-5-20250929", "type": "model", "display_name": "Claude Sonnet 4.5",
            "created_at": "2025-09-29T00:00:00Z", "max_input_tokens": 1000000, "max_tokens": 64000,
            "capabilities": {"image_input": {"supported": True}, "thinking": {"supported": True}}}
    docs_example["data"].append(rich)
    server.handler = lambda req, reply: _json(reply, docs_example)
    with make_client(server, "anthropic") as client:
        plain = client.model_info("claude-sonnet-4-20250514")
        listed = client.model_info("claude-sonnet-4-5-20250929")
    # The docs example gives no limits: the table fills them; the listing's display_name stays.
    assert (plain.context_window, plain.max_output_tokens, plain.supports_vision) == (200000, 64000, True)
    assert plain.display_name == "Claude Sonnet 4" and plain.supports_audio is False
    # The listing's max_input_tokens (1M, with the long-context option) wins over the table's 200K.
    assert (listed.context_window, listed.max_output_tokens, listed.supports_reasoning) == (1000000, 64000, True)


def test_openrouter_and_mistral_listing_fields(server):
    openrouter = {"data": [{
        "id": "openai/gpt-4o", "name": "OpenAI: GPT-4o", "context_length": 128000,
        "architecture": {"input_modalities": ["text", "image", "file"], "output_modalities": ["text"]},
        "top_provider": {"context_length": 128000, "max_completion_tokens": 16384},
        "supported_parameters": ["max_tokens", "temperature", "tools", "tool_choice"]}]}
    server.handler = lambda req, reply: _json(reply, openrouter)
    with make_client(server, "openrouter") as client:
        (gpt,) = client.list_models()
    assert gpt.display_name == "OpenAI: GPT-4o" and gpt.max_output_tokens == 16384
    assert (gpt.supports_vision, gpt.supports_audio, gpt.supports_tools, gpt.supports_reasoning) == \
        (True, False, True, False)

    mistral = {"object": "list", "data": [{
        "id": "mistral-large-2411", "object": "model", "owned_by": "mistralai", "max_context_length": 131072,
        "capabilities": {"completion_chat": True, "function_calling": True, "vision": False}}]}
    server.handler = lambda req, reply: _json(reply, mistral)
    with make_client(server, "mistral") as client:
        (large,) = client.list_models()
    assert large.context_window == 131072 and large.supports_vision is False and large.supports_tools is True


def test_provider_without_a_listing_raises_before_any_request(server):
    server.handler = lambda req, reply: pytest.fail("nothing may be sent")
    with make_client(server, "perplexity") as client:
        with pytest.raises(errors.ConfigurationError, match="perplexity has no model listing endpoint"):
            client.list_models()
        with pytest.raises(errors.NotFoundError, match="perplexity has no model listing"):
            client.model_info("sonar")
    assert server.requests == []


# ------------------------------------------------------------ check_request


def _request(model, *parts, tools=None):
    content = Content.of("Describe this.", *parts)
    return ChatCompletionRequest(model=model, messages=[Message.user(content)], tools=tools)


IMAGE = Content.new_image("https://example.com/cat.png", "image/png")
AUDIO = Content.new_audio("https://example.com/hello.wav", "audio/wav")
TOOL = Tool.function("get_weather", "The weather in a city", {"type": "object", "properties": {}})


def test_check_request_refuses_what_the_table_says_a_model_cannot_take():
    with pytest.raises(errors.ConfigurationError) as info:
        models.check_request("groq", _request("llama-3.3-70b-versatile", IMAGE))
    message = str(info.value)
    assert "groq" in message and "'llama-3.3-70b-versatile'" in message and "images" in message
    assert info.value.provider == "groq"
    with pytest.raises(errors.ConfigurationError, match="'gpt-4o-2024-08-06' does not take audio"):
        models.check_request("openai", _request("gpt-4o-2024-08-06", AUDIO))
    with pytest.raises(errors.ConfigurationError, match="does not take images or audio or tools"):
        models.check_request("local", _request("smollm2-135m", IMAGE, AUDIO, tools=[TOOL]))


def test_check_request_passes_unknown_models_and_unknown_capabilities():
    models.check_request("openai", _request("gpt-4o", IMAGE, tools=[TOOL]))        # it takes both
    models.check_request("openai", _request("gpt-9-preview", IMAGE, AUDIO))         # unknown model
    models.check_request("deepseek", _request("deepseek-chat", IMAGE))              # vision unknown: None
    models.check_request("azure", _request("gpt-4o", AUDIO))                        # deployments never match
    models.check_request("groq", _request("llama-3.3-70b-versatile", tools=[TOOL]))
