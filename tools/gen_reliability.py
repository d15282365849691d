"""Write docs/reliability.md: each class of bad input, what the user sees, the tests that
check it, and the fuzz and cross-check counts of the last recorded runs.

The table is :data:`CLASSES` below; tests/test_reliability_doc.py checks that every test it
names exists and that docs/reliability.md is what this tool renders.  The counts come from
``build/fuzz-counts.json`` and ``build/crosscheck-counts.json``, which the test session
writes (tests/conftest.py); run the fuzzers (``make fuzz-long`` for 10,000 cases each) and
``make lava-long``, then ``make reliability-doc``.

Usage: ``python tools/gen_reliability.py [--check]`` (``--check``: exit 1 if the doc's table
differs from the rendering, without writing).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "reliability.md"
FUZZ_COUNTS = ROOT / "build" / "fuzz-counts.json"
CROSSCHECK_COUNTS = ROOT / "build" / "crosscheck-counts.json"
COUNTS_MARK = "## Counts of the last recorded runs"

#: (class of bad input, what the user sees, tests that check it)
CLASSES = [
    ("Image file that is not an image, truncated, extended, of another format version, or "
     "with any flipped byte",
     "`ImageFormatError` (a `ValueError`): `<path>: truncated: …`, `not a neurocore image`, "
     "`format version 7 …`, `checksum mismatch, the file is corrupt …`",
     ["tests/test_image.py::test_truncated", "tests/test_image.py::test_wrong_magic",
      "tests/test_image.py::test_flipped_byte_is_a_checksum_mismatch",
      "tests/test_fuzz_images.py::test_flipped_bytes_never_load",
      "tests/test_fuzz_images.py::test_truncation_at_every_boundary_never_loads",
      "tests/test_fuzz_images.py::test_truncated_or_extended_files_never_load"]),
    ("Image whose program fields (resealed with a valid checksum) disagree with the config or "
     "geometry: axon ids out of range or ≥ 2**63, negative `t_max`, `n_steps`/clock steps off "
     "the time grid, `layers`/`neuron_ids` that do not match, `null`s, non-numbers",
     "`ImageFormatError`: `<path>: program field 'input_axons[0]': 999999 is outside [0, 31]` "
     "(the field and the value)",
     ["tests/test_image_fields.py::test_bad_program_field_names_the_field",
      "tests/test_fuzz_images.py::test_resealed_json_field_attacks",
      "tests/test_fuzz_images.py::test_resealed_payload_flips"]),
    ("Hostile image metadata: nesting 100,000 deep, integers of 4,400 digits, a metadata "
     "length of gigabytes",
     "`ImageFormatError`: `metadata JSON invalid: nested too deeply`, `… exceeds the limit`; "
     "the header is read first, nothing else is read for a bad header",
     ["tests/test_image_fields.py::test_hostile_metadata_json",
      "tests/test_image_fields.py::test_huge_metadata_length_is_rejected_from_the_header",
      "tests/test_image_fields.py::test_header_is_read_before_the_rest"]),
    ("Image path that is a directory, a device (`/dev/zero`) or missing",
     "`ImageFormatError`: `<path>: is a directory …`, `is not a regular file …`, "
     "`cannot be read: No such file or directory`",
     ["tests/test_image_fields.py::test_a_directory_is_not_an_image",
      "tests/test_image_fields.py::test_dev_zero_is_rejected_without_reading_it",
      "tests/test_image_fields.py::test_missing_file_is_an_image_format_error"]),
    ("`$readmemh` export with a missing manifest or hex file, or a malformed `memories` field",
     "`ImageFormatError` naming the file: `cannot be read`, `manifest memories 7 is not a list`",
     ["tests/test_image_fields.py::test_read_hex_without_a_manifest",
      "tests/test_image_fields.py::test_read_hex_with_a_malformed_memories_field",
      "tests/test_image_fields.py::test_read_hex_with_a_missing_hex_file"]),
    ("Model with a hidden layer (first or later) not followed by ReLU",
     "`MappingError`: `model[1] (Linear): a hidden layer must be followed by ReLU …`",
     ["tests/test_coercions.py::test_first_hidden_layer_without_relu_is_rejected",
      "tests/test_coercions.py::test_second_hidden_layer_without_relu_is_rejected"]),
    ("`from_model` arguments: `t_max` not an integer ≥ 2, empty or NaN calibration data, an "
     "input shape a layer cannot take, NaN/inf parameters, grouped convolutions",
     "`ValueError`/`UnsupportedLayerError` naming the argument or the layer: "
     "`model[3] (Linear): bias holds NaN or infinite values`",
     ["tests/test_coercions.py::test_from_model_t_max_must_be_an_integer",
      "tests/test_coercions.py::test_from_model_needs_a_non_empty_calibration_batch",
      "tests/test_coercions.py::test_from_model_rejects_nan_calibration_data",
      "tests/test_coercions.py::test_from_model_names_the_layer_a_wrong_input_shape_breaks",
      "tests/test_coercions.py::test_from_model_names_the_layer_with_nan_weights",
      "tests/test_coercions.py::test_from_model_names_a_grouped_convolution"]),
    ("`NetworkBuilder` values that are not whole numbers (`vth=100.9`, `'100'`, `True`, NaN, "
     "inf, `axon=1.5`), negative counts, synapses or routes to compartments never added",
     "`ConfigError` naming the parameter: `vth must be integers, not 100.9`, `synapse target "
     "of axon 0: compartment 5 was not added with add_compartments`; whole floats (`100.0`) "
     "are accepted",
     ["tests/test_coercions.py::test_add_profile_rejects_non_integers",
      "tests/test_coercions.py::test_builder_rejects_non_integers",
      "tests/test_coercions.py::test_add_compartments_rejects_a_negative_count",
      "tests/test_coercions.py::test_synapses_and_routes_need_created_compartments",
      "tests/test_coercions.py::test_whole_floats_are_still_integers"]),
    ("`CoreGeometry` fields beyond what the arithmetic supports (`state_bits=64`, "
     "`decay_shift=70`, depths above 2**24)",
     "`ValueError`: `CoreGeometry.state_bits=64 exceeds its limit 32`",
     ["tests/test_coercions.py::test_geometry_field_bounds",
      "tests/test_coercions.py::test_geometry_decay_bits_within_decay_shift"]),
    ("`GoldenCore.run` with an empty batch or zero steps",
     "`ValueError`: `inputs of shape (0, 4, 128) hold no samples or no steps …`",
     ["tests/test_coercions.py::test_golden_run_rejects_an_empty_batch_or_no_steps"]),
    ("Host link: a line that never goes quiet (garbage, sync bytes, stale frames for other "
     "commands), or silence",
     "`LinkTimeout` after `timeout` seconds (without a timeout: after two empty reads or "
     "4,160 stray bytes)",
     ["tests/test_host_link.py::test_a_line_that_never_goes_quiet_still_times_out",
      "tests/test_host_link.py::test_without_a_deadline_garbage_is_bounded",
      "tests/test_fuzz_host.py::test_boardlink_against_a_misbehaving_board"]),
    ("Host link: short, long or inconsistent OK replies, events outside the run, an INFO "
     "reply of another protocol version, with fewer geometry fields or an invalid geometry",
     "`ProtocolError` naming the command and the byte counts: `STATUS reply has 3 data bytes, "
     "expected 8`, `event (output 0, step 0) lies outside this run …`",
     ["tests/test_host_link.py::test_short_or_inconsistent_ok_replies_are_protocol_errors",
      "tests/test_host_link.py::test_events_outside_the_run_are_protocol_errors",
      "tests/test_host_link.py::test_decode_info_rejects_another_protocol_version",
      "tests/test_host_link.py::test_decode_info_rejects_a_short_geometry",
      "tests/test_host_link.py::test_invalid_board_geometry_is_a_protocol_error"]),
    ("Frame parser fed arbitrary bytes in any chunking",
     "only CRC-valid frames, the same in every chunking; no exception",
     ["tests/test_fuzz_host.py::test_frame_parser_finds_every_frame_in_any_chunking",
      "tests/test_fuzz_host.py::test_frame_parser_survives_any_bytes"]),
    ("`encode_frame` with a command or sync value above one byte (`0x110`)",
     "`ValueError`: `command 0x110 does not fit one byte`",
     ["tests/test_coercions.py::test_encode_frame_rejects_a_command_above_one_byte"]),
    ("`neurocore` command line: `report <directory>`, `convert --out <directory>`, "
     "`--hex <file>`, `--cache <file>`, `evaluate --out <file>`, `--mnist <missing>`, "
     "`--geometry bogus`",
     "one line `neurocore: error: …` on stderr, exit status 2, no traceback, before any "
     "training or conversion",
     ["tests/test_cli_paths.py::test_path_mistake_is_one_line_and_status_2",
      "tests/test_fuzz_cli.py::test_cli_path_arguments"]),
    ("`python -m neurocore.sw.host` with a missing image or a bad port",
     "one line `neurocore.sw.host: error: …`, exit status 2 (the image is read before the "
     "port is opened)",
     ["tests/test_host_link.py::test_host_cli_missing_image",
      "tests/test_host_link.py::test_host_cli_bad_port"]),
    ("RTL: a full host-spike buffer; forced memory words with a synapse to a compartment "
     "≥ n_compartments or an AXON route to an axon ≥ n_axons (non-power-of-two geometry)",
     "`inp.ready` low, no spike lost; the bad entry is skipped (never aliased) and "
     "`list_range` is raised",
     ["tests/test_rtl_robustness.py::test_full_input_buffer_holds_the_host_off_without_loss",
      "tests/test_rtl_robustness.py::test_synapse_to_a_compartment_beyond_n_is_skipped_and_flagged",
      "tests/test_rtl_robustness.py::test_axon_route_beyond_n_axons_is_skipped_and_flagged"]),
]

HEAD = """# Reliability: bad input and what the user sees

Generated by `tools/gen_reliability.py` (`make reliability-doc`); tests/test_reliability_doc.py
keeps the table true (every test it names exists, and this file is the tool's rendering).
Every class below is rejected with an error that names the bad value and where it came from;
nothing is clipped or repaired silently.

Fuzzers (hypothesis, tests/test_fuzz_*.py): `FUZZ_EXAMPLES` cases per fuzzer (1,000 in
`make test`, 10,000 with `make fuzz-long`), seeded by `NEUROCORE_SEED` (printed in the test
header; set it to replay a run).  Golden vs Lava: 200 random networks in `make test`, 1,000 with
`make lava-long`.  `make test-boards` builds the ULX3S bitstream (minutes; not in CI).

| class of bad input | what the user sees | checked by |
|---|---|---|
"""


def render_table() -> str:
    rows = []
    for what, sees, tests in CLASSES:
        names = "<br>".join(f"`{t}`" for t in tests)
        rows.append(f"| {what} | {sees} | {names} |")
    return HEAD + "\n".join(rows) + "\n"


def _load(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def render_counts(fuzz: dict, crosscheck: dict) -> str:
    lines = [COUNTS_MARK, ""]
    if fuzz:
        lines += ["| fuzzer | cases | per property | seed | FUZZ_EXAMPLES | failed fuzz tests |",
                  "|---|---|---|---|---|---|"]
        for name, r in sorted(fuzz.items()):
            props = ", ".join(f"{p}: {n:,}" for p, n in r["properties"].items())
            lines.append(f"| {name} | {r['cases']:,} | {props} | {r['seed']} | "
                         f"{r['fuzz_examples']} | {r.get('failed_fuzz_tests', '?')} |")
        if all(r.get("failed_fuzz_tests") == 0 for r in fuzz.values()):
            lines += ["", "Every case ended in the documented error or in an accepted input "
                      "whose fields are all valid (0 tracebacks, 0 silently changed images)."]
    else:
        lines.append("No fuzz run recorded (run the fuzzers, then `make reliability-doc`).")
    lines.append("")
    for name, t in sorted(crosscheck.items()):
        lines.append(f"- {name}: {t['networks']:,} networks, {t['samples']:,} samples, "
                     f"{t['mismatches']} mismatches (last recorded run).")
    return "\n".join(lines).rstrip() + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only compare the table")
    args = ap.parse_args(argv)
    table = render_table()
    if args.check:
        current = DOC.read_text() if DOC.exists() else ""
        ok = current.split(COUNTS_MARK)[0].rstrip() == table.rstrip()
        print("docs/reliability.md is up to date" if ok else
              "docs/reliability.md differs from tools/gen_reliability.py: run make reliability-doc")
        return 0 if ok else 1
    DOC.write_text(table + "\n" + render_counts(_load(FUZZ_COUNTS), _load(CROSSCHECK_COUNTS)))
    print(f"wrote {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
