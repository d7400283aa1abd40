from lib.tables import power_of_ten


def test_power_of_ten_writes_superscripts():
    assert power_of_ten(1e-5) == "10⁻⁵"
    assert power_of_ten(2.5e-3) == "2.5 × 10⁻³"
    assert power_of_ten(3e4) == "3 × 10⁴"
    assert power_of_ten(2.6e13) == "2.6 × 10¹³"
    assert power_of_ten(1.0) == "10⁰"
    assert power_of_ten(0.0) == "0"


def test_intervals_write_infinity_and_keep_the_sign_of_an_end_near_zero():
    from lib.tables import interval, number
    assert number(-0.004) == "-0.004" and number(0.004, signed=False) == "0.004"
    assert number(-0.0004) == "-0.0004" and number(-0.00004) == "+0.00" and number(0.0) == "+0.00"
    assert number(-0.006) == "-0.01" and number(float("inf"), 3) == "∞"
    assert interval(0.12, -0.004, 0.17) == "+0.12 [-0.004, +0.17]"
    assert interval(float("inf"), 0.984, float("inf"), 3, signed=False) == "∞ [0.984, ∞]"
