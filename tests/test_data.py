"""The data layer: real XNLI / PAWS-X rows from the shared folder, the synthetic generator, and `auto`."""

import shutil
from collections import Counter
from pathlib import Path

import pytest

from bench.data.examples import Examples
from bench.data.load import load_task_data
from bench.data.local import resolve_data_dir
from bench.errors import BenchError
from bench.data.tasks import TASKS, get_task

XNLI_LANGUAGES = TASKS["xnli"].languages
PAWSX_LANGUAGES = TASKS["pawsx"].languages


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    """No test may depend on the network or on the caller's data directory."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("BENCH_DATA_DIR", raising=False)


@pytest.fixture(scope="module")
def xnli_test(shared_data_dir):
    return load_task_data("xnli", source="local", data_dir=shared_data_dir)


@pytest.fixture
def tiny_xnli_copy(shared_data_dir, tmp_path) -> Path:
    """A writable copy of the tiny XNLI files (a few kB) in the official layout."""
    shutil.copytree(shared_data_dir / "tiny" / "XNLI-1.0", tmp_path / "XNLI-1.0")
    return tmp_path


def _append(path: Path, line: str) -> int:
    """Append one line to a file that may lack a final newline; return its 1-based line number."""
    text = path.read_text(encoding="utf-8").rstrip("\n")
    path.write_text(f"{text}\n{line}\n", encoding="utf-8")
    return text.count("\n") + 2


# ------------------------------------------------------------------------------------------- XNLI


def test_xnli_test_split_has_5010_balanced_rows_per_language(xnli_test):
    assert xnli_test.source == "local"
    assert xnli_test.eval_split == "test"
    assert list(xnli_test.eval) == ["en", "es", "sw", "ur"]  # "all" = every language in the file
    for lang, examples in xnli_test.eval.items():
        assert examples.language == lang
        assert len(examples) == len(examples.premise) == len(examples.hypothesis) == 5010
        assert Counter(examples.label) == {0: 1670, 1: 1670, 2: 1670}


def test_xnli_labels_map_to_the_official_order(xnli_test):
    en, es = xnli_test.eval["en"], xnli_test.eval["es"]
    premise = "Well, I wasn't even thinking about that, but I was so frustrated, and, I ended up talking to him again."
    assert (en.premise[0], en.hypothesis[0], en.label[0]) == (premise, "I havent spoken to him again.", 2)
    assert (en.hypothesis[1], en.label[1]) == ("I was so upset that I just started talking to him again.", 0)
    assert (es.hypothesis[0], es.label[0]) == ("No he vuelto a hablar con él.", 2)
    assert get_task("xnli").label_names[2] == "contradiction"


def test_xnli_dev_has_chinese(shared_data_dir):
    data = load_task_data("xnli", source="local", data_dir=shared_data_dir, languages=["zh"], eval_split="dev")
    zh = data.eval["zh"]
    assert list(data.eval) == ["zh"] and len(zh) == 2490
    assert zh.premise[0] == "他说，妈妈，我回来了。"
    assert (zh.hypothesis[0], zh.label[0]) == ("校车把他放下后，他立即给他妈妈打了电话。", 1)  # neutral


def test_xnli_tiny_has_all_15_languages(shared_data_dir):
    data = load_task_data("xnli", source="local", data_dir=shared_data_dir / "tiny")
    assert tuple(data.eval) == XNLI_LANGUAGES
    assert all(len(examples) == 2 for examples in data.eval.values())


def test_requested_languages_keep_their_order(shared_data_dir):
    data = load_task_data("xnli", source="local", data_dir=shared_data_dir / "tiny", languages="ur, de")
    assert list(data.eval) == ["ur", "de"]


def test_language_outside_the_builtin_list_loads_from_local_files(tiny_xnli_copy):
    test_file = tiny_xnli_copy / "XNLI-1.0" / "xnli.test.tsv"
    _append(test_file, "xx\tneutral\tfoo bar\tbaz")
    only = load_task_data("xnli", source="local", data_dir=tiny_xnli_copy, languages=["xx"])
    assert (only.eval["xx"].premise, only.eval["xx"].label) == (["foo bar"], [1])
    everything = load_task_data("xnli", source="local", data_dir=tiny_xnli_copy)
    assert set(everything.eval) == {*XNLI_LANGUAGES, "xx"}


def test_training_falls_back_to_english_dev_with_a_note(xnli_test, shared_data_dir):
    assert xnli_test.train_split == "dev"
    assert xnli_test.train.language == "en" and len(xnli_test.train) == 2490
    assert xnli_test.train.premise[0] == "And he said, Mama, I'm home."
    assert xnli_test.notes == [
        f"no training split in {shared_data_dir}: training on the English dev split (offline)"
    ]
    dev = load_task_data("xnli", source="local", data_dir=shared_data_dir, eval_split="dev", languages=["en"])
    assert any("overlaps training" in note for note in dev.notes)


def test_training_file_is_used_when_present(tiny_xnli_copy):
    train_file = tiny_xnli_copy / "XNLI-MT-1.0" / "multinli" / "multinli.train.en.tsv"
    train_file.parent.mkdir(parents=True)
    train_file.write_text("premise\thypo\tlabel\nA b.\tC d.\tcontradictory\nE f.\tG \"h.\tneutral\n", encoding="utf-8")
    data = load_task_data("xnli", source="local", data_dir=tiny_xnli_copy)
    assert data.train_split == "train" and data.notes == []
    assert data.train.hypothesis == ["C d.", 'G "h.'] and data.train.label == [2, 1]  # quotes are text


# ----------------------------------------------------------------------------------------- PAWS-X


@pytest.fixture
def pawsx_dir(shared_data_dir, tmp_path) -> Path:
    """The real de/zh files plus the tiny English rows (the full set has no English), linked not copied."""
    (tmp_path / "x-final").mkdir()
    for lang in ("de", "zh"):
        (tmp_path / "x-final" / lang).symlink_to(shared_data_dir / "x-final" / lang)
    (tmp_path / "x-final" / "en").symlink_to(shared_data_dir / "tiny" / "x-final" / "en")
    return tmp_path


def test_pawsx_real_rows(pawsx_dir):
    data = load_task_data("pawsx", source="local", data_dir=pawsx_dir, languages=["de", "zh"])
    de, zh = data.eval["de"], data.eval["zh"]
    assert (len(de), len(zh)) == (2000, 2000)
    assert Counter(de.label) == {0: 1105, 1: 895} and Counter(zh.label) == {0: 1106, 1: 894}
    assert (de.premise[1], de.label[1]) == ("Der Tabaci River ist ein Nebenfluss des Flusses Leurda in Rumänien.", 0)
    # Rows with the untranslated placeholder are kept, as the official loader keeps them.
    assert "de test: 32 rows hold the untranslated placeholder 'NS' (kept, as the official loader does)" in data.notes
    assert sum("NS" in pair for pair in zip(de.premise, de.hypothesis)) == 32
    assert data.train_split == "dev" and len(data.train) == 4


def test_pawsx_tiny_has_all_7_languages(shared_data_dir):
    data = load_task_data("pawsx", source="local", data_dir=shared_data_dir / "tiny")
    assert tuple(data.eval) == PAWSX_LANGUAGES
    assert all(len(ex) == 4 and set(ex.label) <= {0, 1} for ex in data.eval.values())


def test_pawsx_without_english_says_what_is_missing(shared_data_dir):
    with pytest.raises(BenchError, match=r"no English training data .*x-final/en/dev_2k.tsv"):
        load_task_data("pawsx", source="local", data_dir=shared_data_dir)


# ----------------------------------------------------------------------------------------- errors


def test_missing_directory_says_how_to_fix(tmp_path):
    with pytest.raises(BenchError, match=r"nowhere' does not exist: set data_dir in the config or BENCH_DATA_DIR"):
        load_task_data("xnli", source="local", data_dir=tmp_path / "nowhere")


def test_missing_file_names_the_expected_path(tmp_path):
    with pytest.raises(BenchError, match=r"XNLI-1.0/xnli.test.tsv not found"):
        load_task_data("xnli", source="local", data_dir=tmp_path)
    with pytest.raises(BenchError, match=r"x-final not found"):
        load_task_data("pawsx", source="local", data_dir=tmp_path)


def test_local_without_a_directory_says_how_to_set_one():
    with pytest.raises(BenchError, match="BENCH_DATA_DIR"):
        load_task_data("xnli", source="local")


def test_unknown_language_lists_the_available_ones(shared_data_dir, pawsx_dir):
    with pytest.raises(BenchError, match=r"'fr' is not in .*xnli.test.tsv; available: en, es, sw, ur$"):
        load_task_data("xnli", source="local", data_dir=shared_data_dir, languages=["en", "fr"])
    with pytest.raises(BenchError, match=r"'ja' is not in .*x-final/ja/test_2k.tsv not found; available: de, en, zh"):
        load_task_data("pawsx", source="local", data_dir=pawsx_dir, languages=["ja"])


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("en\tneutral\tonly three fields", "3 tab-separated fields, the header has 4"),
        ("en\tmaybe\ta\tb", "unknown gold_label 'maybe'"),
    ],
)
def test_malformed_row_names_file_and_line(tiny_xnli_copy, line, problem):
    number = _append(tiny_xnli_copy / "XNLI-1.0" / "xnli.test.tsv", line)
    assert number == 32
    with pytest.raises(BenchError, match=rf"xnli.test.tsv, line 32: {problem}"):
        load_task_data("xnli", source="local", data_dir=tiny_xnli_copy)


def test_header_without_a_needed_column(tiny_xnli_copy):
    (tiny_xnli_copy / "XNLI-1.0" / "xnli.test.tsv").write_text("language\tlabel\tsentence1\tsentence2\n")
    with pytest.raises(BenchError, match=r"xnli.test.tsv, line 1: the header has no column 'gold_label'"):
        load_task_data("xnli", source="local", data_dir=tiny_xnli_copy)


def test_unknown_names_suggest_the_allowed_ones():
    with pytest.raises(BenchError, match=r"unknown task 'xnlii'; did you mean 'xnli'\? available: xnli, pawsx"):
        load_task_data("xnlii")
    with pytest.raises(BenchError, match=r"unknown data source 'hubb'.*available: auto, hub, local, synthetic"):
        load_task_data("xnli", source="hubb")
    with pytest.raises(BenchError, match=r"unknown eval split 'validation'.*available: test, dev"):
        load_task_data("xnli", eval_split="validation")
    with pytest.raises(BenchError, match="max_train must be 0 or more"):
        load_task_data("xnli", source="synthetic", max_train=-1)


# -------------------------------------------------------------------------------------- synthetic


def test_synthetic_is_deterministic_and_covers_every_language():
    first = load_task_data("xnli", source="synthetic", seed=3)
    again = load_task_data("xnli", source="synthetic", seed=3)
    other = load_task_data("xnli", source="synthetic", seed=4)
    assert (first.source, first.source_detail) == ("synthetic", "generated (seed 3)")
    assert tuple(first.eval) == XNLI_LANGUAGES
    assert len(first.train) == 2000 and all(len(ex) == 200 for ex in first.eval.values())
    assert first.train == again.train and first.eval == again.eval
    assert first.train.premise != other.train.premise
    counts = Counter(first.train.label)
    assert set(counts) == {0, 1, 2} and max(counts.values()) - min(counts.values()) <= 1
    # Languages differ in surface form: their own vocabularies, in their own scripts.
    assert not set(first.eval["en"].premise[0].split()) & set(first.eval["de"].premise[0].split())
    assert all(ord(ch) > 0x3000 for ch in first.eval["zh"].premise[0].replace(" ", ""))


def test_synthetic_sizes_and_languages_are_overridable():
    data = load_task_data("pawsx", source="synthetic", languages=["ko", "xx"], max_train=50, max_eval_per_language=7)
    assert list(data.eval) == ["ko", "xx"]
    assert len(data.train) == 50 and all(len(ex) == 7 for ex in data.eval.values())
    assert tuple(load_task_data("pawsx", source="synthetic").eval) == PAWSX_LANGUAGES


def _novel_words(premise: str, hypothesis: str) -> int:
    """Hypothesis words absent from the premise, capped at 2: a language-independent feature."""
    return min(2, len(set(hypothesis.split()) - set(premise.split())))


@pytest.mark.parametrize("task", ["xnli", "pawsx"])
def test_synthetic_labels_are_learnable_across_languages(task):
    data = load_task_data(task, source="synthetic", seed=1)
    # "Train" the simplest classifier: the majority English label for each feature value ...
    by_feature: dict[int, Counter] = {}
    for p, h, y in zip(data.train.premise, data.train.hypothesis, data.train.label):
        by_feature.setdefault(_novel_words(p, h), Counter())[y] += 1
    rule = {feature: counts.most_common(1)[0][0] for feature, counts in by_feature.items()}
    # ... and evaluate it zero-shot on every language: far above chance (1/3 or 1/2).
    for examples in data.eval.values():
        predictions = [rule.get(_novel_words(p, h)) for p, h in zip(examples.premise, examples.hypothesis)]
        accuracy = sum(p == y for p, y in zip(predictions, examples.label)) / len(examples)
        assert accuracy > 0.9, (examples.language, accuracy)


# ------------------------------------------------------------------------------------- auto / hub


def test_auto_offline_falls_back_to_local(shared_data_dir):
    data = load_task_data("xnli", data_dir=shared_data_dir, languages=["sw"], max_eval_per_language=10)
    assert data.source == "local" and data.source_detail == str(shared_data_dir)
    assert data.notes[0] == "hub: HF_HUB_OFFLINE=1 is set (offline mode)"
    assert len(data.eval["sw"]) == 10


def test_auto_offline_without_a_directory_falls_back_to_synthetic():
    data = load_task_data("pawsx", max_train=10, max_eval_per_language=5)
    assert data.source == "synthetic"
    assert data.notes[:2] == [
        "hub: HF_HUB_OFFLINE=1 is set (offline mode)",
        "local: no data directory (set data_dir in the config or BENCH_DATA_DIR)",
    ]


def test_auto_uses_the_environment_directory(shared_data_dir, monkeypatch):
    monkeypatch.setenv("BENCH_DATA_DIR", str(shared_data_dir / "tiny"))
    assert load_task_data("pawsx").source == "local"


def test_hub_offline_fails_at_once(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(BenchError, match="HF_DATASETS_OFFLINE=1 is set"):
        load_task_data("xnli", source="hub")
    with pytest.raises(BenchError, match=r"unknown pawsx language on the hub 'xx'"):
        load_task_data("pawsx", source="hub", languages=["xx"])


def test_hub_rows_are_read_by_column_name(monkeypatch):
    """The hub path against real `datasets` tables, without a network."""
    datasets = pytest.importorskip("datasets")
    requests = []

    def fake_load_dataset(hub_id, lang, split):
        requests.append((hub_id, lang, split))
        return datasets.Dataset.from_dict(
            {"id": [1, 2, 3], "sentence1": ["a", "b", "c"], "sentence2": ["x", "y", "z"], "label": [1, -1, 0]}
        )

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr("bench.data.hub.check_reachable", lambda: None)
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    data = load_task_data("pawsx", source="hub", languages=["ja"], eval_split="dev")
    assert requests == [
        ("google-research-datasets/paws-x", "en", "train"),
        ("google-research-datasets/paws-x", "ja", "validation"),
    ]
    assert (data.source, data.train_split, data.eval_split) == ("hub", "train", "dev")
    ja = data.eval["ja"]
    assert (ja.premise, ja.hypothesis, ja.label) == (["a", "c"], ["x", "z"], [1, 0])
    assert "ja dev: dropped 1 rows without a valid label" in data.notes


# ------------------------------------------------------------------------------------------ helpers


def test_resolve_data_dir_prefers_the_config(monkeypatch, tmp_path):
    assert resolve_data_dir(None) is None
    monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path))
    assert resolve_data_dir(None) == tmp_path
    assert resolve_data_dir("/elsewhere") == Path("/elsewhere")


def test_subsample_is_seeded_ordered_and_parallel_across_languages(xnli_test):
    en = xnli_test.eval["en"].subsample(100, seed=7)
    es = xnli_test.eval["es"].subsample(100, seed=7)
    assert len(en) == 100 and en == xnli_test.eval["en"].subsample(100, seed=7)
    assert en != xnli_test.eval["en"].subsample(100, seed=8)
    assert en.label == es.label  # the same positions: the rows are translations of each other
    positions = [xnli_test.eval["en"].hypothesis.index(h) for h in en.hypothesis]
    assert positions == sorted(positions)
    assert xnli_test.eval["en"].subsample(None, seed=0) is xnli_test.eval["en"]
    assert len(Examples("xx", ["a"], ["b"], [0]).subsample(5, seed=0)) == 1


def test_every_xglm_language_has_a_resource_group():
    """The 30 languages of XGLM's pre-training data, each in exactly one group, the groups ordered by data share."""
    from bench.config import DataConfig
    from bench.data.tasks import XGLM_PRETRAINING_TOKENS, xglm_language_groups

    groups = xglm_language_groups()
    members = [lang for langs in groups.values() for lang in langs]
    assert sorted(members) == sorted(XGLM_PRETRAINING_TOKENS) and len(members) == 30
    assert groups["high"][:7] == ["en", "ru", "zh", "de", "es", "fr", "ja"] and {"it", "pt"} <= set(groups["high"])
    assert {"ar", "bg", "el", "ko", "tr", "vi", "th"} <= set(groups["medium"])
    assert {"hi", "sw", "ur", "qu"} <= set(groups["low"])
    smallest = {name: min(XGLM_PRETRAINING_TOKENS[lang] for lang in langs) for name, langs in groups.items()}
    largest = {name: max(XGLM_PRETRAINING_TOKENS[lang] for lang in langs) for name, langs in groups.items()}
    assert smallest["high"] > largest["medium"] and smallest["medium"] > largest["low"]
    # Every language of both tasks lands in a group by default (PAWS-X ja and ko included).
    default = DataConfig().language_groups
    for task in TASKS.values():
        assert all(any(lang in langs for langs in default.values()) for lang in task.languages)


# ------------------------------------------------------------------------------- a directory that was set


def test_a_set_data_directory_that_does_not_exist_is_bad_input(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BENCH_DATA_DIR", "../shared/data")  # the README's line, from a clone elsewhere
    with pytest.raises(BenchError, match=r"\$BENCH_DATA_DIR = '\.\./shared/data' \(resolved from .*\) does not exist"):
        load_task_data("xnli")  # source auto: no silent fallback to synthetic rows
    with pytest.raises(BenchError, match=r"data\.data_dir in the config = '/nowhere' does not exist"):
        load_task_data("xnli", source="synthetic", data_dir="/nowhere")


def test_a_set_data_directory_without_the_task_is_bad_input(monkeypatch, tmp_path):
    (tmp_path / "XNLI-1.0").mkdir()
    monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path))
    with pytest.raises(BenchError, match=r"x-final.*not found.*the data directory was set, so it is not skipped"):
        load_task_data("pawsx")
