from lib.tables import power_of_ten


def test_power_of_ten_writes_superscripts():
    assert power_of_ten(1e-5) == "10⁻⁵"
    assert power_of_ten(2.5e-3) == "2.5 × 10⁻³"
    assert power_of_ten(3e4) == "3 × 10⁴"
    assert power_of_ten(2.6e13) == "2.6 × 10¹³"
    assert power_of_ten(1.0) == "10⁰"
