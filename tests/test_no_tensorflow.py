"""Serving never loads TensorFlow: the dashboard's Explain page and the command line
classify and explain on the fast runtime alone (TensorFlow costs seconds and about a
gigabyte). Each check runs in a fresh interpreter, whose modules no other test touched."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from .conftest import ROOT


def _fresh_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=600, cwd=ROOT)


def test_the_explain_page_runs_all_four_maps_without_tensorflow(pbc_examples):
    path = pbc_examples[0][0]
    result = _fresh_python(f"""
        import sys
        from streamlit.testing.v1 import AppTest
        from dashboard.state import make_cell
        from pathlib import Path

        path = Path({str(path)!r})
        cell = make_cell(path.name, path.read_bytes())
        at = AppTest.from_file("streamlit_app.py", default_timeout=300)
        at.switch_page("pages/2_Explain.py")
        at.session_state["classified"] = {{cell.sha256: cell}}
        at.session_state["lime_samples"] = 50
        at.session_state["shap_evaluations"] = 50
        at.run()
        assert not at.exception, at.exception
        images = [i for e in at.get("image") for i in e.proto.imgs]
        assert len(images) == 9, len(images)
        print("LOADED", sorted(m for m in ("tensorflow", "keras", "tf_keras_vis", "lime",
                                           "shap") if m in sys.modules))
    """)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "LOADED []" in result.stdout, result.stdout


def test_predict_and_explain_on_the_command_line_load_no_tensorflow(pbc_examples, tmp_path):
    path = pbc_examples[0][0]
    for arguments in (["predict", str(path), "--out", str(tmp_path / "a.csv")],
                      ["explain", str(path), "--method", "gradcam", "--out",
                       str(tmp_path / "g.png")],
                      ["explain", str(path), "--method", "shap", "--out",
                       str(tmp_path / "s.png")]):
        result = _fresh_python(f"""
            import runpy, sys
            sys.argv = ["hematovision", *{arguments!r}]
            try:
                runpy.run_module("hematovision", run_name="__main__")
            except SystemExit as end:
                assert not end.code, end.code
            print("LOADED", sorted(m for m in ("tensorflow", "keras", "tf_keras_vis",
                                               "lime", "shap") if m in sys.modules))
        """)
        assert result.returncode == 0, result.stderr[-3000:]
        assert "LOADED []" in result.stdout, (arguments, result.stdout)


def test_grad_cam_on_another_layer_loads_tensorflow_on_purpose(pbc_examples, tmp_path):
    # The advanced option is allowed to be slow; it must still work.
    path = pbc_examples[0][0]
    result = subprocess.run([sys.executable, "-m", "hematovision", "explain", str(path),
                             "--method", "gradcam", "--layer", "top_conv", "--out",
                             str(tmp_path / "g.png")], capture_output=True, text=True,
                            timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "g.png").stat().st_size > 0
