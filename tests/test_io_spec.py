"""SPEC parser: the real 34-ID-C log of scan 54 and small files written here."""
from pathlib import Path

import numpy as np
import pytest

from autophase.errors import InputError
from autophase.io.raw34idc import Geometry34IDC
from autophase.io.spec import read_spec, read_spec_scan

SPEC54 = Path(__file__).resolve().parents[2] / "shared" / "data" / "aps34idc-scan54" / "example.spec"

SMALL = """#F small.spec
#E 1
#O0 Delta  Theta  pm detector
#o0 del th pmd

#S 1  ascan  th 0 1  4 0.5
#P0 30 0.5 7
#L Theta  pm detector  Counts
0 1 10
0.25 1 11
0.5 1 12
0.75 1 13
1 1 14

#F small.spec
#E 2
#O0 Delta  Theta  Energy
#O1 camdist
#o0 del th en
#o1 cam

#S 2  dscan  th -0.1 0.1  2 1
#P0 31 0.4 9.5
#P1 750
#UIMR5  10 64 20 32 1
#L Theta  Counts
0.3 5
0.4 6
0.5 7
"""


def test_small_file_header_redefinition_and_relative_scan(tmp_path):
    p = tmp_path / "small.spec"
    p.write_text(SMALL)
    scans = read_spec(p)
    s1, s2 = scans[1], scans[2]
    # names split on two spaces: 'pm detector' is one motor
    assert s1.motors == {"Delta": 30.0, "Theta": 0.5, "pm detector": 7.0}
    assert s1.columns == ("Theta", "pm detector", "Counts") and s1.data.shape == (5, 3)
    np.testing.assert_allclose(s1.planned_positions()["th"], [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(s1.column("counts"), [10, 11, 12, 13, 14])
    # the second header block redefines the motors for scan 2
    assert s2.motor("Energy") == 9.5 and s2.motor("cam") == 750 and "pm detector" not in s2.motors
    np.testing.assert_allclose(s2.planned_positions()["th"], [0.3, 0.4, 0.5])  # dscan: relative to #P
    assert s2.rois["UIMR5"] == (10, 64, 20, 32) and s2.count_time == 1.0
    with pytest.raises(InputError, match="no scan 3"):
        read_spec_scan(p, 3)
    with pytest.raises(KeyError, match="no motor"):
        s1.motor("Gamma")


def test_not_spec(tmp_path):
    (tmp_path / "x.spec").write_text("hello\nworld\n")
    with pytest.raises(InputError, match="no '#S' scan"):
        read_spec(tmp_path / "x.spec")
    with pytest.raises(InputError, match="no such SPEC file"):
        read_spec(tmp_path / "missing.spec")


@pytest.mark.skipif(not SPEC54.exists(), reason="scan 54 data not present")
def test_real_scan54_header():
    s = read_spec_scan(SPEC54, 54)
    assert s.command == "ascan th -0.279996 0.720004 200 0.25"
    assert s.rois["UIMR5"] == (0, 256, 0, 256)
    assert s.motor("camdist") == 500 and s.motor("Energy") == 9 and s.motor("Delta") == pytest.approx(32.174)
    th = s.planned_positions()["th"]
    assert len(th) == 201 == s.data.shape[0]
    np.testing.assert_allclose(s.column("Theta"), th, atol=1e-5)  # recorded vs planned
    g = Geometry34IDC.from_spec(s)
    # SPEC's own 2θ for this scan (#G4) is 34.31625944°
    assert g.two_theta_deg == pytest.approx(34.31626, abs=1e-4)
    assert g.step_deg == pytest.approx(0.005) and g.scan_motor == "th"
    assert 2.3e-10 < g.d_spacing_m < 2.4e-10  # Au 111, 2.355 Å
