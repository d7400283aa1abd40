from lib.tables import power_of_ten


def test_power_of_ten_writes_mathematical_notation():
    assert power_of_ten(1e-5) == "$10^{-5}$"
    assert power_of_ten(2.5e-3) == r"$2.5 \times 10^{-3}$"
    assert power_of_ten(3e4) == r"$3 \times 10^{4}$"
    assert power_of_ten(1.0) == "$10^{0}$"
