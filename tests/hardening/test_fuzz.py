"""Property-based fuzzing of every reader of untrusted bytes: safetensors headers and
each metadata reader. Properties: nothing but lineage's own errors ever escapes (no
RecursionError, TypeError, OverflowError, MemoryError...), nothing hangs (a per-example
deadline), and what is accepted is typed as promised. Bounded examples: a few seconds."""

from __future__ import annotations

import json
import math
import struct
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobs.loopback_hub.card import read_front_matter
from lineage.errors import LineageError, MalformedMetadataError, MalformedWeightsError
from lineage.weights.card import read_card
from lineage.weights.dtypes import SAFETENSORS_DTYPES
from lineage.weights.header import MAX_ELEMENTS, parse_header, read_header
from lineage.weights.layout import resolve_layout
from lineage.weights.metadata import read_metadata
from lineage.weights.safetensors_file import SafetensorsFile
from lineage.weights.untrusted import Fields, load_json, load_yaml

FUZZ = settings(
    max_examples=150,
    deadline=2000,  # ms per example: a hang or a blow-up fails, slow machine or not
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,  # the same examples every run: a failure reproduces
)

huge_ints = st.one_of(
    st.integers(-10, 10),
    st.integers(0, 2**70),
    st.sampled_from([2**31, 2**32, 2**62, 2**63 - 1, 2**63, 2**64, 2**64 + 1, -(2**63)]),
)
scalars = st.one_of(
    st.none(), st.booleans(), huge_ints, st.floats(allow_nan=True), st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


# -- safetensors headers -------------------------------------------------------------------
dims = st.one_of(huge_ints, st.floats(), st.text(max_size=3), st.none())
shapes = st.one_of(st.lists(dims, max_size=5), st.lists(st.integers(0, 8), max_size=4), scalars)
offsets = st.one_of(st.lists(huge_ints, min_size=0, max_size=3), scalars)
entries = st.one_of(
    st.fixed_dictionaries(
        {
            "dtype": st.one_of(st.sampled_from(sorted(SAFETENSORS_DTYPES)), scalars),
            "shape": shapes,
            "data_offsets": offsets,
        }
    ),
    json_values,
)
headers = st.dictionaries(
    st.one_of(st.text(max_size=10), st.just("__metadata__")), entries, max_size=4
)


@FUZZ
@given(header=headers, data_size=st.integers(0, 512))
def test_structured_headers_are_refused_cleanly_or_read_fully(header, data_size):
    raw = json.dumps(header).encode()
    try:
        parsed = parse_header(raw, path="fuzz", file_size=8 + len(raw) + data_size)
    except MalformedWeightsError:
        return
    for info in parsed.tensors.values():  # accepted: every promise holds
        assert info.offset >= 8 + len(raw) and info.offset + info.nbytes <= parsed.file_size
        assert math.prod(max(d, 1) for d in info.shape) <= MAX_ELEMENTS
    with tempfile.TemporaryDirectory() as tmp:  # and every tensor really reads
        path = Path(tmp) / "m.safetensors"
        path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(data_size))
        with SafetensorsFile(path) as sf:
            for name, info in sf.tensors.items():
                assert tuple(sf.tensor(name).shape) == info.shape


@FUZZ
@given(
    blob=st.binary(max_size=300), length=st.one_of(st.none(), huge_ints.filter(lambda n: n >= 0))
)
def test_arbitrary_bytes_as_a_safetensors_file(blob, length):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.safetensors"
        prefix = struct.pack("<Q", min(length, 2**64 - 1)) if length is not None else b""
        path.write_bytes(prefix + blob)
        try:
            read_header(path)
        except MalformedWeightsError as err:
            head = path.read_bytes()[:8]
            if len(head) == 8 and struct.unpack("<Q", head)[0] > 1000:
                # the length field is raw bytes: never echoed, in hex or as a number
                assert str(struct.unpack("<Q", head)[0]) not in str(err)
                assert head.hex() not in str(err)


# -- JSON metadata ---------------------------------------------------------------------------
json_texts = st.one_of(
    st.builds(json.dumps, json_values),
    st.text(alphabet='[]{}",:0123456789.eE-+ tfalsenu\\', max_size=200),
    st.binary(max_size=200),
    st.integers(1, 3000).map(lambda n: "[" * n + "]" * n),
)


@FUZZ
@given(text=json_texts)
def test_load_json_raises_only_its_own_error(text):
    try:
        load_json(text, "fuzz.json")
    except MalformedMetadataError:
        pass


@FUZZ
@given(doc=st.dictionaries(st.sampled_from(["a", "b", "r", "tags"]), json_values, max_size=4))
def test_typed_fields_return_their_type_or_refuse(doc):
    for strict in (True, False):
        fields = Fields(doc, "fuzz.json", strict=strict)
        try:
            text, texts, number = fields.text("a"), fields.texts("b"), fields.integer("r", 1, 99)
        except MalformedMetadataError:
            assert strict
            continue
        assert text is None or isinstance(text, str)
        assert isinstance(texts, tuple) and all(isinstance(t, str) for t in texts)
        assert number is None or (type(number) is int and 1 <= number <= 99)


@FUZZ
@given(config=json_texts, adapter=json_texts, index=json_texts)
def test_model_folder_metadata_raises_only_lineage_errors(config, adapter, index):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name, text in (
            ("config.json", config),
            ("adapter_config.json", adapter),
            ("model.safetensors.index.json", index),
        ):
            (root / name).write_bytes(text if isinstance(text, bytes) else text.encode())
        try:
            meta = read_metadata("peft-adapter", root, [])
        except MalformedMetadataError:
            pass
        else:
            assert meta.model_type is None or isinstance(meta.model_type, str)
            assert all(isinstance(a, str) for a in meta.architectures)
            assert meta.adapter_rank is None or 1 <= meta.adapter_rank <= 1 << 20
            assert meta.adapter_base is None or isinstance(meta.adapter_base, str)
        try:
            resolve_layout(root)
        except LineageError:
            pass


@FUZZ
@given(index=json_texts)
def test_diffusers_index_raises_only_lineage_errors(index):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "model_index.json").write_bytes(
            index if isinstance(index, bytes) else index.encode()
        )
        (root / "unet").mkdir()
        try:
            resolve_layout(root)
        except LineageError:
            pass


# -- YAML cards ----------------------------------------------------------------------------------
yaml_tokens = st.sampled_from(
    [
        "a",
        ":",
        " ",
        "\n",
        "- ",
        "[",
        "]",
        "{",
        "}",
        ",",
        "&x ",
        "*x",
        "&y ",
        "*y",
        "!!int ",
        "!!timestamp ",
        "!!binary ",
        "!!python/object ",
        "<<: ",
        "'",
        '"',
        "#",
        "|",
        ">",
        "?",
        "1",
        "2024-01-01",
        "tags",
        "base_model",
        "license",
        "~",
        "\t",
        "!!set ",
        "!!omap ",
    ]
)
yaml_texts = st.one_of(st.text(max_size=200), st.lists(yaml_tokens, max_size=60).map("".join))


@FUZZ
@given(text=yaml_texts)
def test_load_yaml_raises_only_its_own_error(text):
    try:
        load_yaml(text, "card")
    except MalformedMetadataError:
        pass


@FUZZ
@given(body=yaml_texts)
def test_cards_are_never_fatal_and_always_typed(body):
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "README.md").write_text(f"---\n{body}\n---\n# card\n")
        card = read_card(tmp)
    assert all(isinstance(b, str) and b for b in card.base_models)
    assert all(isinstance(t, str) for t in card.tags)
    assert card.license is None or isinstance(card.license, str)
    assert card.error is None or isinstance(card.error, str)
    front = read_front_matter(f"---\n{body}\n---\n")  # the loopback Hub's reading
    json.dumps(front)  # whatever the card holds, an endpoint can serialise it


# -- indexes with structure: weight maps and diffusers components ---------------------------------
weight_maps = st.dictionaries(st.text(max_size=6), json_values, max_size=3).map(
    lambda wm: json.dumps({"weight_map": wm})
)
component_maps = st.dictionaries(st.text(max_size=300), json_values, max_size=3).map(json.dumps)


@settings(FUZZ, max_examples=60)  # each example writes two folders
@given(index=weight_maps, components=component_maps)
def test_structured_indexes_raise_only_lineage_errors_locally_and_on_the_hub(index, components):
    from lineage.hub.probe import plan_sources
    from lineage.hub.remote import RemoteModel

    with tempfile.TemporaryDirectory() as tmp:
        sharded, pipe = Path(tmp) / "sharded", Path(tmp) / "pipe"
        sharded.mkdir()
        (sharded / "model.safetensors.index.json").write_text(index)
        (pipe / "unet").mkdir(parents=True)
        (pipe / "model_index.json").write_text(components)
        for folder in (sharded, pipe):
            try:
                resolve_layout(folder)
            except LineageError:
                pass
    for name, text in (("model.safetensors.index.json", index), ("model_index.json", components)):
        remote = RemoteModel("org/m", "0" * 40, {name: None, "unet/x": 1})
        try:
            plan_sources(remote, lambda _name, text=text: text.encode())
        except LineageError:
            pass
