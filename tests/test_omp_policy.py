"""The example scripts' OpenMP wait policy: passive on busy CPUs, OpenMP's default on idle ones, the user's wins."""

from __future__ import annotations

from hoimask._omp import cpu_busy_fraction, omp_wait_policy


def test_busy_cpus_get_passive_waiting_and_idle_ones_the_default():
    assert omp_wait_policy({}, busy=0.5) == {"OMP_WAIT_POLICY": "PASSIVE"}
    assert omp_wait_policy({}, busy=0.49) == {"GOMP_SPINCOUNT": "10000"}  # idle: a short, bounded spin


def test_a_policy_the_user_set_is_kept():
    assert omp_wait_policy({"OMP_WAIT_POLICY": "ACTIVE"}, busy=1.0) == {}
    assert omp_wait_policy({"GOMP_SPINCOUNT": "0"}, busy=0.0) == {}


def test_measures_the_machine_without_arguments():
    busy = cpu_busy_fraction(0.05)
    assert busy is None or 0.0 <= busy <= 1.0
    assert omp_wait_policy({}) in ({"GOMP_SPINCOUNT": "10000"}, {"OMP_WAIT_POLICY": "PASSIVE"})
