"""The circle check on small crates written for it."""
import module_cycles


def crate(tmp_path, files):
    src = tmp_path / "src"
    for name, code in files.items():
        path = src / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(code)
    return str(src)


def test_a_circle_of_three_is_found_and_a_chain_is_not(tmp_path):
    src = crate(tmp_path, {
        "a.rs": "use crate::b;\n",
        "b.rs": "use crate::c::X;\n",
        "c.rs": "fn f() { crate::a::g(); }\n",
        "d.rs": "use crate::a;\n",
    })
    assert module_cycles.cycles(src) == [["a", "b", "c"]]


def test_tests_comments_and_parents_do_not_count(tmp_path):
    src = crate(tmp_path, {
        "a.rs": "// see crate::b\nfn f() {}\n#[cfg(test)]\nmod tests { use crate::b; }\n",
        "b.rs": "use crate::a;\n",
        "oip/mod.rs": "pub mod tensor;\nuse crate::oip::tensor::T;\n",
        "oip/tensor.rs": "use crate::oip;\n",
    })
    assert module_cycles.cycles(src) == []


def test_grouped_imports_count(tmp_path):
    src = crate(tmp_path, {"a.rs": "use crate::{b, c::X};\n", "b.rs": "use crate::a;\n", "c.rs": ""})
    assert module_cycles.cycles(src) == [["a", "b"]]
