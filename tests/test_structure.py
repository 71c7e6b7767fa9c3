"""The shape of generate_video.py (issue 22), read from its source: the core never compares a family or
pipeline name (families are classes with hooks), functions stay short with few parameters, no module
global carries a run's state, and the sections follow the data: each calls into a later one only
through the family hooks (or main), and the docstring's map names the banners exactly."""

import ast
import re

import pytest

from conftest import ROOT, gv

SOURCE = (ROOT / "generate_video.py").read_text(encoding="utf-8")
TREE = ast.parse(SOURCE)
LINES = SOURCE.splitlines()


def banners() -> list[tuple[int, int, str]]:
    """(line, number, title) of each section banner: a rule line, then '# N. Title'."""
    return [(i + 1, int(m.group(1)), m.group(2)) for i, line in enumerate(LINES)
            if i and LINES[i - 1].startswith("# ---") and (m := re.fullmatch(r"# (\d+)\. (.+)", line))]


def family_classes() -> set[str]:
    return {cls.__name__ for cls in gv.FAMILIES.values()} | {"Family"}


def outside_families():
    """Top-level statements that are not a family class."""
    return [n for n in TREE.body if not (isinstance(n, ast.ClassDef) and n.name in family_classes())]


def names_a_family(node) -> bool:
    """A string constant that is a registered pipeline class, a family's MODELS key or a prefix of one."""
    family_words = set(gv.FAMILIES) | {"ltx", "ltx2", "cogvideox", "LTX", "LTX2", "CogVideoX"}
    values = [node] + (list(node.elts) if isinstance(node, (ast.Tuple, ast.List, ast.Set)) else [])
    return any(isinstance(v, ast.Constant) and v.value in family_words for v in values)


def by_class_name(node) -> bool:
    """An expression that tells a pipeline by its class's name: type(pipe).__name__."""
    return any(isinstance(x, ast.Attribute) and x.attr == "__name__" and ast.unparse(x.value) == "type(pipe)"
               for x in ast.walk(node))


def family_comparisons(nodes) -> list[str]:
    """Branches on a family: comparisons with a family's name or a class's name, startswith on
    either, and lookups keyed by a pipeline's class name."""
    found = []
    for top in nodes:
        for node in ast.walk(top):
            if isinstance(node, ast.Compare):
                hit = any(names_a_family(x) or by_class_name(x) for x in [node.left, *node.comparators])
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                    node.func.attr in ("startswith", "endswith"):
                hit = by_class_name(node.func.value) or any(names_a_family(a) for a in node.args)
            else:
                hit = isinstance(node, ast.Subscript) and by_class_name(node.slice)
            if hit:
                found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def test_the_core_compares_no_family_or_pipeline_name():
    assert family_comparisons(outside_families()) == []


def test_the_scan_sees_a_comparison_on_a_family_name():
    """The scan above is not blind: the old core's kinds of branches are found."""
    old = ast.parse('if spec.family == "cogvideox": pass\n'
                    'if type(pipe).__name__.startswith("CogVideoX"): pass\n'
                    'if spec.pipeline != "LTXConditionPipeline": pass\n'
                    'if spec.family in ("ltx", "ltx2"): pass\n'
                    'FAMILIES[type(pipe).__name__].upsample_pipeline\n'
                    'raise RunError(f"{type(pipe).__name__} has no LoRA loader")\n')  # a message: no branch
    assert len(family_comparisons([old])) == 5


def test_every_family_is_a_registered_class_cogvideox_included():
    assert {cls.__name__ for cls in gv.FAMILIES.values()} >= {"LTX", "LTXCondition", "CogVideoX", "LTX2"}
    assert {spec.family for spec in gv.MODELS.values()} == {gv.LTX, gv.LTXCondition, gv.CogVideoX, gv.LTX2}
    # text-to-video checkpoints' weights run in their image-to-video sibling
    assert gv.FAMILIES["LTXPipeline"] is gv.LTX and gv.FAMILIES["LTX2Pipeline"] is gv.LTX2


def test_per_family_facts_live_on_the_families():
    """Prompt lengths are each pipeline's own default (diffusers 0.42.1: LTXImageToVideoPipeline 128,
    LTXConditionPipeline 256, CogVideoXImageToVideoPipeline 226, LTX2ImageToVideoPipeline 1024)."""
    assert {c.pipeline: c.max_sequence_length for c in (gv.LTX, gv.LTXCondition, gv.CogVideoX, gv.LTX2)} == {
        "LTXImageToVideoPipeline": 128, "LTXConditionPipeline": 256, "CogVideoXImageToVideoPipeline": 226,
        "LTX2ImageToVideoPipeline": 1024}
    for old_side_table in ("MAX_SEQUENCE_LENGTH", "GENERIC_SPECS", "PIPELINE_ALIASES", "FAMILY_DIMS",
                           "FOLDED_COMPONENTS", "TEXT_ENCODERS", "ACTIVE_KERNELS"):
        assert not hasattr(gv, old_side_table)


def test_functions_are_short_and_few_take_many_parameters():
    functions = [n for n in ast.walk(TREE) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    long = [f"{f.name} ({f.end_lineno - f.lineno + 1} lines)" for f in functions if f.end_lineno - f.lineno + 1 > 90]
    assert long == []

    def count(f):
        return len(f.args.posonlyargs) + len(f.args.args) + len(f.args.kwonlyargs)

    many = sorted(f.name for f in functions if count(f) > 7)
    assert len(many) <= 3, many


def test_no_module_global_carries_a_runs_state():
    """Module-level containers that start empty are registries filled at import, not run state;
    the one other is the process's own: the temp-file locks it holds while it lives (a lock is
    only as good as its holder's life, so it cannot belong to a run)."""
    empty = [ast.unparse(n.targets[0] if isinstance(n, ast.Assign) else n.target) for n in TREE.body
             if isinstance(n, (ast.Assign, ast.AnnAssign)) and isinstance(n.value, (ast.Dict, ast.List, ast.Set))
             and not getattr(n.value, "keys", getattr(n.value, "elts", None))]
    assert empty == ["FAMILIES", "HELD_LOCKS"]


def test_the_docstring_map_names_the_banners_exactly_in_order():
    found = banners()
    assert [n for _, n, _ in found] == list(range(1, len(found) + 1)) and len(found) >= 12
    doc_map = re.findall(r"^\s*(\d+)\. (.+)$", ast.get_docstring(TREE), re.M)
    assert [(int(n), t) for n, t in doc_map] == [(n, t) for _, n, t in found]


def section_of(line: int) -> int:
    return max([n for start, n, _ in banners() if start <= line], default=0)


def test_each_section_calls_later_sections_only_through_the_family_hooks():
    """A function or class uses names defined in later sections only if it is a family class (its
    hooks are the way forward) or main (the recipe that drives every section)."""
    defined = {}
    for node in TREE.body:
        targets = [node.name] if isinstance(node, (ast.FunctionDef, ast.ClassDef)) else [
            e.id for t in getattr(node, "targets", [getattr(node, "target", None)]) if t is not None
            for e in (t.elts if isinstance(t, ast.Tuple) else [t]) if isinstance(e, ast.Name)]
        for name in targets:
            defined[name] = section_of(node.lineno)
    forward = []
    for node in outside_families():
        if getattr(node, "name", "") == "main":
            continue
        annotations = {id(x) for sub in ast.walk(node) for a in _annotations(sub) for x in ast.walk(a)}
        local = {sub.id for sub in ast.walk(node) if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store)}
        local |= {sub.arg for sub in ast.walk(node) if isinstance(sub, ast.arg)}
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Load) and id(sub) not in annotations and \
                    sub.id not in local and defined.get(sub.id, 0) > section_of(node.lineno):
                forward.append(f"{getattr(node, 'name', node.lineno)} -> {sub.id}")
    assert forward == []


def _annotations(node):
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        args = node.args
        return [a.annotation for a in args.posonlyargs + args.args + args.kwonlyargs if a.annotation] + \
            ([node.returns] if node.returns else [])
    return [node.annotation] if isinstance(node, ast.AnnAssign) else []


@pytest.mark.parametrize("number, words", [(1, "Constants"), (5, "Plan, the job"), (9, "Families"),
                                           (15, "Command line"), (16, "The web page")])
def test_sections_come_in_the_order_the_data_flows(number, words):
    assert {n: t for _, n, t in banners()}[number].startswith(words)
