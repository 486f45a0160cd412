"""planner.perf.queueing: TTFT percentile SLA -> admissible prefill utilization.

Two kinds of checks:

* Simulation: an FCFS pool of c servers fed by a Poisson stream is simulated (Lindley
  recursion for c = 1; for c > 1 with deterministic service the exact vectorized reduction
  to c interleaved Lindley recursions, itself checked against a heap-based event simulation;
  the heap simulation for gamma service). At the admissible utilization returned by the
  module, the simulated p-th percentile of TTFT = W + service_ms + extra_ms must lie within
  TTFT_REL_TOL of the target.
* Properties and exact values that a wrong implementation could violate: monotonicity in
  target, pool size, percentile, service time, extra time and service variability; the
  zero-utilization cases; Erlang-C against direct formulas; exact M/M/c and M/G/1 results;
  vectorized calls equal element-wise scalar calls; input validation.
"""

from __future__ import annotations

import heapq
import math

import numpy as np
import pytest

from planner.perf.queueing import (
    admissible_utilization,
    erlang_b,
    erlang_c,
    mean_waiting_time_ms,
    sustainable_rate_rps,
    waiting_time_exceedance,
    waiting_time_quantile_ms,
)

# Relative tolerance on the simulated p-th percentile TTFT at the admissible utilization.
# Budget: the approximation itself is within about +-5 % of the true p50/p90/p99 TTFT over
# c = 1..64 and rho = 0.3..0.95 (measured against 4M-arrival simulations; the worst cases,
# about +4 %, are multi-server pools in light load at p99), plus the Monte Carlo error of
# a percentile estimated from 0.4-1M correlated waiting times (about 1 % at c <= 4 and up
# to 4-5 % for p99 of a 16-server pool with variable service). 10 % covers the sum with a
# little margin; observed deviations in this file are within about 5 %.
TTFT_REL_TOL = 0.10

SERVICE_MS = 200.0  # prefill time of one prompt
EXTRA_MS = 30.0  # KV transfer + first decode step
WARMUP_FRACTION = 0.1  # the queue starts empty: drop the first 10 % of customers


# --------------------------------------------------------------------------------------
# Simulators (FCFS, Poisson arrivals)
# --------------------------------------------------------------------------------------


def lindley_waits(interarrival_ms: np.ndarray, service_ms: np.ndarray) -> np.ndarray:
    """Single server: W[n] = max(0, W[n-1] + S[n-1] - T[n]), in closed form.

    With U[0] = 0 and U[n] = sum_{k<n} (S[k] - T[k+1]), W[n] = U[n] - min_{k<=n} U[k].
    """
    steps = service_ms[:-1] - interarrival_ms[1:]
    u = np.concatenate(([0.0], np.cumsum(steps)))
    return u - np.minimum.accumulate(u)


def mdc_waits(interarrival_ms: np.ndarray, service_ms: float, servers: int) -> np.ndarray:
    """M/D/c FCFS waits, vectorized.

    With constant service and FCFS, customer n always gets the server released by customer
    n - c, so W[n] = max(0, W[n-c] + s - (A[n] - A[n-c])): c interleaved Lindley
    recursions (Crommelin's reduction to E_c/D/1).
    """
    n = (len(interarrival_ms) // servers) * servers
    arrivals = np.cumsum(interarrival_ms)[:n].reshape(-1, servers)  # row k: customers k*c + j
    gaps = np.diff(arrivals, axis=0)
    u = np.vstack([np.zeros((1, servers)), np.cumsum(service_ms - gaps, axis=0)])
    return (u - np.minimum.accumulate(u, axis=0)).reshape(-1)


def heap_waits(interarrival_ms: np.ndarray, service_ms: np.ndarray, servers: int) -> np.ndarray:
    """General c-server FCFS simulation: each arrival takes the earliest-free server."""
    arrivals = np.cumsum(interarrival_ms).tolist()
    service = service_ms.tolist()
    free_at = [0.0] * servers
    waits = [0.0] * len(arrivals)
    for i, a in enumerate(arrivals):
        start = max(a, free_at[0])
        waits[i] = start - a
        heapq.heapreplace(free_at, start + service[i])
    return np.asarray(waits)


def simulated_ttft_percentile_ms(
    rho: float, servers: int, percentile: float, cv: float, n: int, seed: int
) -> float:
    rng = np.random.default_rng(seed)
    rate_per_ms = rho * servers / SERVICE_MS
    inter = rng.exponential(1.0 / rate_per_ms, size=n)
    if cv > 0:
        shape = 1.0 / cv**2
        service = rng.gamma(shape, SERVICE_MS / shape, size=n)
    else:
        service = np.full(n, SERVICE_MS)
    if servers == 1:
        waits = lindley_waits(inter, service)
    elif cv == 0:
        waits = mdc_waits(inter, SERVICE_MS, servers)
    else:
        waits = heap_waits(inter, service, servers)
    waits = waits[int(WARMUP_FRACTION * n) :]
    # The model's TTFT: queueing delay + (mean) prefill time + fixed extra.
    return float(np.percentile(waits + SERVICE_MS + EXTRA_MS, percentile))


def test_vectorized_mdc_simulation_equals_event_simulation() -> None:
    rng = np.random.default_rng(7)
    for servers, rho in [(2, 0.7), (4, 0.9), (16, 0.85)]:
        inter = rng.exponential(SERVICE_MS / (rho * servers), size=40_000)
        fast = mdc_waits(inter, SERVICE_MS, servers)
        slow = heap_waits(inter[: len(fast)], np.full(len(fast), SERVICE_MS), servers)
        np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-6)
        assert fast.mean() > 0.0


# --------------------------------------------------------------------------------------
# Admissible utilization against simulation
# --------------------------------------------------------------------------------------

# (servers, percentile, cv_service, ttft_target_ms); targets put rho inside (0, rho_max).
SIM_CASES = [
    (1, 50, 0.0, 500.0),
    (1, 90, 0.0, 900.0),
    (1, 99, 0.0, 1500.0),
    (4, 50, 0.0, 300.0),
    (4, 90, 0.0, 450.0),
    (4, 99, 0.0, 600.0),
    (4, 99, 0.0, 320.0),  # light load (rho ~ 0.39): the approximation's weakest region
    (16, 50, 0.0, 250.0),
    (16, 90, 0.0, 300.0),
    (16, 99, 0.0, 400.0),
    (1, 99, 0.5, 1500.0),
    (4, 90, 0.5, 450.0),
    (16, 99, 0.7, 450.0),
    (4, 99, 1.5, 1200.0),
]


@pytest.mark.parametrize(("servers", "percentile", "cv", "target_ms"), SIM_CASES)
def test_simulated_ttft_percentile_meets_target(
    servers: int, percentile: float, cv: float, target_ms: float
) -> None:
    rho = float(admissible_utilization(target_ms, SERVICE_MS, percentile, servers, EXTRA_MS, cv))
    assert 0.2 < rho < 0.95 - 1e-6, "target should make the queue, not a bound, binding"
    vectorized = servers == 1 or cv == 0
    n = 1_000_000 if vectorized else 400_000
    sim_ms = simulated_ttft_percentile_ms(rho, servers, percentile, cv, n, seed=1000 + servers)
    assert sim_ms <= target_ms * (1.0 + TTFT_REL_TOL), f"SLA overshoot: {sim_ms:.1f} ms"
    assert sim_ms >= target_ms * (1.0 - TTFT_REL_TOL), f"too conservative: {sim_ms:.1f} ms"


def test_mmc_quantile_matches_simulation_and_exact_formula() -> None:
    """cv = 1 with gamma service is M/M/c, where the model is exact: ln(C/tau)/(c mu - lam)."""
    servers, rho, pct = 4, 0.8, 99.0
    c_wait = float(erlang_c(servers, servers * rho))
    exact_ms = math.log(c_wait / (1 - pct / 100)) / (servers * (1 - rho)) * SERVICE_MS
    model_ms = float(waiting_time_quantile_ms(rho, SERVICE_MS, servers, pct, cv_service=1.0))
    assert model_ms == pytest.approx(exact_ms, rel=1e-9)
    sim = simulated_ttft_percentile_ms(rho, servers, pct, 1.0, 400_000, seed=5)
    assert sim - SERVICE_MS - EXTRA_MS == pytest.approx(exact_ms, rel=0.05)


# --------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------


# Property grids are evaluated in one broadcast call each (axis -1 is the varied input).
GRID_SERVERS = np.array([1, 2, 3, 8, 16, 64])[:, None, None, None]
GRID_PCT = np.array([50.0, 90.0, 99.0, 99.9])[None, :, None, None]
GRID_CV = np.array([0.0, 0.6, 1.0, 1.5])[None, None, :, None]


def test_non_decreasing_in_target() -> None:
    targets = np.linspace(SERVICE_MS + EXTRA_MS, 30 * SERVICE_MS, 400)
    rho = admissible_utilization(targets, SERVICE_MS, GRID_PCT, GRID_SERVERS, EXTRA_MS, GRID_CV)
    assert rho.shape == (6, 4, 4, 400)
    assert np.all(np.diff(rho, axis=-1) >= 0.0)
    assert np.all(rho[..., -1] > 0.5)


def test_pooling_never_lowers_utilization() -> None:
    servers = np.arange(1, 129)
    targets = np.array([231.0, 260.0, 400.0, 1000.0])[:, None, None, None]
    rho = admissible_utilization(
        targets, SERVICE_MS, GRID_PCT[..., 0:1], servers, EXTRA_MS, GRID_CV[..., 0:1]
    )
    assert rho.shape == (4, 4, 4, 128)
    assert np.all(np.diff(rho, axis=-1) >= 0.0)
    # The single-server view is conservative: per-server rate never drops as the pool grows.
    rate = sustainable_rate_rps(
        targets, SERVICE_MS, GRID_PCT[..., 0:1], servers, EXTRA_MS, GRID_CV[..., 0:1]
    )
    assert np.all(np.diff(rate / servers, axis=-1) >= -1e-12)  # float rounding of rho*c/c


@pytest.mark.parametrize("target_ms", [240.0, 500.0, 2000.0])
def test_non_increasing_in_percentile_service_extra_and_cv(target_ms: float) -> None:
    servers = GRID_SERVERS[:, :, 0, 0]  # (6, 1)
    pcts = np.concatenate([np.linspace(1, 99, 197), [99.5, 99.9, 99.99, 99.999]])
    rho = admissible_utilization(target_ms, SERVICE_MS, pcts, servers, EXTRA_MS)
    assert np.all(np.diff(rho, axis=-1) <= 0.0)

    service = np.linspace(10.0, target_ms, 300)
    rho = admissible_utilization(target_ms, service, 99, servers, 0.0)
    assert np.all(np.diff(rho, axis=-1) <= 0.0)

    extra = np.linspace(0.0, target_ms, 300)
    rho = admissible_utilization(target_ms, 0.2 * target_ms, 90, servers, extra)
    assert np.all(np.diff(rho, axis=-1) <= 0.0)

    cvs = np.linspace(0.0, 2.5, 251)
    rho = admissible_utilization(target_ms, 0.2 * target_ms, 99, servers, 0.0, cvs)
    assert np.all(np.diff(rho, axis=-1) <= 0.0)


@pytest.mark.parametrize("servers", [1, 2, 5, 16, 64, 256])
@pytest.mark.parametrize("cv", [0.0, 0.3, 1.0, 2.0])
def test_waiting_quantile_non_decreasing_in_rho(servers: int, cv: float) -> None:
    rho = np.concatenate([np.linspace(1e-4, 0.999, 5000), [0.9999, 0.99999]])
    for pct in (10, 50, 90, 99, 99.9, 99.99):
        q = waiting_time_quantile_ms(rho, SERVICE_MS, servers, pct, cv)
        assert np.all(np.isfinite(q))
        assert np.all(np.diff(q) >= 0.0), pct


def test_zero_when_empty_pool_misses_target() -> None:
    target = np.array([100.0, 229.999, 230.0, 1000.0])
    rho = admissible_utilization(target, SERVICE_MS, 99, 4, EXTRA_MS)
    assert rho[0] == 0.0 and rho[1] == 0.0
    assert rho[2] > 0.0  # no queueing slack, but a pool of 4 often has a free server
    assert np.all(sustainable_rate_rps(target[:2], SERVICE_MS, 99, 4, EXTRA_MS) == 0.0)
    assert float(admissible_utilization(10_000.0, np.inf, 99, 4)) == 0.0  # infeasible config


def test_zero_slack_means_probability_of_waiting_equals_tail() -> None:
    """Target = service + extra: admissible rho is where P(wait) = 1 - p/100 (M/G/1: rho)."""
    for pct in (50.0, 90.0, 99.0):
        rho = float(admissible_utilization(SERVICE_MS + EXTRA_MS, SERVICE_MS, pct, 1, EXTRA_MS))
        assert rho == pytest.approx(1 - pct / 100, abs=1e-9)
    rho = float(admissible_utilization(SERVICE_MS, SERVICE_MS, 90.0, 8))
    assert float(erlang_c(8, 8 * rho)) == pytest.approx(0.1, abs=1e-9)


def test_rho_max_is_respected() -> None:
    rho = admissible_utilization(1e6, SERVICE_MS, [50, 99], [1, 32], rho_max=0.8)
    np.testing.assert_array_equal(rho, [0.8, 0.8])
    assert float(admissible_utilization(np.inf, SERVICE_MS, 99)) == 0.95


def test_rate_is_rho_times_servers_over_service() -> None:
    args = (800.0, SERVICE_MS, 99, 8, EXTRA_MS, 0.4)
    rho = float(admissible_utilization(*args))
    assert float(sustainable_rate_rps(*args)) == pytest.approx(rho * 8 / (SERVICE_MS / 1000))


# --------------------------------------------------------------------------------------
# Exact values
# --------------------------------------------------------------------------------------


def erlang_c_direct(c: int, a: float) -> float:
    """C(c, a) = (a^c/c! * c/(c-a)) / (sum_{k<c} a^k/k! + a^c/c! * c/(c-a)), in logs."""
    log_terms = [k * math.log(a) - math.lgamma(k + 1) for k in range(c)]
    log_top = c * math.log(a) - math.lgamma(c + 1) + math.log(c / (c - a))
    m = max([*log_terms, log_top])
    top = math.exp(log_top - m)
    return top / (sum(math.exp(t - m) for t in log_terms) + top)


def test_erlang_c_known_values() -> None:
    a = np.linspace(0.01, 0.99, 50)
    np.testing.assert_allclose(erlang_c(1, a), a, rtol=1e-13)  # M/M/1: P(wait) = rho
    a2 = np.linspace(0.01, 1.99, 50)
    np.testing.assert_allclose(erlang_c(2, a2), a2**2 / (2 + a2), rtol=1e-12)
    a3 = np.linspace(0.01, 2.99, 50)
    direct3 = [erlang_c_direct(3, x) for x in a3]
    np.testing.assert_allclose(erlang_c(3, a3), direct3, rtol=1e-12)
    assert float(erlang_c(10, 7.5)) == pytest.approx(0.30661120022, rel=1e-10)  # tables
    assert float(erlang_c(4, 0.0)) == 0.0
    np.testing.assert_array_equal(erlang_c(4, [4.0, 5.0, np.inf]), [1.0, 1.0, 1.0])
    assert float(erlang_b(1, 1.0)) == pytest.approx(0.5)


def test_erlang_c_large_pools_are_stable() -> None:
    for c in (50, 200, 400, 1000):
        for rho in (0.5, 0.9, 0.99):
            got = float(erlang_c(c, c * rho))
            assert 0.0 <= got <= 1.0
            assert got == pytest.approx(erlang_c_direct(c, c * rho), rel=1e-9)
    servers = np.array([[1], [7], [300]])
    loads = np.array([0.5, 0.9]) * servers  # broadcasting, mixed pool sizes in one call
    expected = [
        [erlang_c_direct(int(c), float(a)) for a in row]
        for c, row in zip(servers[:, 0], loads, strict=True)
    ]
    np.testing.assert_allclose(erlang_c(servers, loads), expected, rtol=1e-10)


def test_mg1_anchors_are_exact() -> None:
    """c = 1: Pollaczek-Khinchine mean; P(W > 0) = rho; M/M/1 tail rho * exp(-(mu-lam) t)."""
    rho = np.array([0.2, 0.5, 0.8, 0.95])
    for cv in (0.0, 0.5, 1.0, 1.7):
        pk = rho * SERVICE_MS * (1 + cv**2) / (2 * (1 - rho))
        np.testing.assert_allclose(mean_waiting_time_ms(rho, SERVICE_MS, 1, cv), pk, rtol=1e-12)
        np.testing.assert_allclose(waiting_time_exceedance(0.0, rho, SERVICE_MS, 1, cv), rho)
    t = 3 * SERVICE_MS
    exact = rho * np.exp(-(1 - rho) * t / SERVICE_MS)
    np.testing.assert_allclose(waiting_time_exceedance(t, rho, SERVICE_MS, 1, 1.0), exact)


def test_quantile_and_exceedance_agree() -> None:
    rho = np.array([0.3, 0.6, 0.85, 0.95])
    for servers in (1, 4, 16):
        for cv in (0.0, 0.5, 1.5):
            for pct in (90.0, 99.0, 99.9):
                q = waiting_time_quantile_ms(rho, SERVICE_MS, servers, pct, cv)
                tail = waiting_time_exceedance(q, rho, SERVICE_MS, servers, cv)
                positive = q > 0
                np.testing.assert_allclose(tail[positive], 1 - pct / 100, rtol=1e-9)
                assert np.all(tail[~positive] <= 1 - pct / 100 + 1e-12)


def test_unstable_queue() -> None:
    assert float(waiting_time_quantile_ms(1.0, SERVICE_MS, 4, 99)) == np.inf
    assert float(mean_waiting_time_ms(1.2, SERVICE_MS, 4)) == np.inf
    assert float(waiting_time_exceedance(1e9, 1.0, SERVICE_MS, 4)) == 1.0
    assert float(waiting_time_quantile_ms(0.0, SERVICE_MS, 4, 99.99)) == 0.0


# --------------------------------------------------------------------------------------
# Vectorization
# --------------------------------------------------------------------------------------


def test_vectorized_equals_elementwise_scalar_calls() -> None:
    rng = np.random.default_rng(42)
    n = 40
    target = rng.uniform(150.0, 3000.0, n)
    service = rng.uniform(20.0, 600.0, n)
    pct = rng.choice([50.0, 90.0, 99.0, 99.9], n)
    servers = rng.integers(1, 33, n)
    extra = rng.uniform(0.0, 100.0, n)
    cv = rng.choice([0.0, 0.3, 1.0, 1.8], n)
    vec = admissible_utilization(target, service, pct, servers, extra, cv)
    assert vec.shape == (n,)
    assert np.any(vec == 0.0) and np.any((vec > 0.0) & (vec < 0.95))
    scalar = [
        float(admissible_utilization(*args))
        for args in zip(target, service, pct, servers, extra, cv, strict=True)
    ]
    np.testing.assert_allclose(vec, scalar, rtol=1e-9, atol=1e-12)

    rho = rng.uniform(0.0, 0.99, n)
    vq = waiting_time_quantile_ms(rho, service, servers, pct, cv)
    sq = [
        float(waiting_time_quantile_ms(*args))
        for args in zip(rho, service, servers, pct, cv, strict=True)
    ]
    np.testing.assert_allclose(vq, sq, rtol=1e-12, atol=1e-12)


def test_broadcasting_shapes() -> None:
    targets = np.array([300.0, 600.0, 1200.0])[:, None]
    servers = np.array([1, 2, 4, 8])
    rho = admissible_utilization(targets, SERVICE_MS, 99, servers, EXTRA_MS)
    assert rho.shape == (3, 4)
    assert isinstance(admissible_utilization(600.0, SERVICE_MS, 99), np.ndarray)
    big = admissible_utilization(
        np.linspace(250, 5000, 2000), SERVICE_MS, 99, np.arange(2000) % 32 + 1, EXTRA_MS
    )
    assert big.shape == (2000,) and np.all((big >= 0) & (big <= 0.95))


# --------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("pct", [0, 100, -5, 150, float("nan")])
def test_percentile_outside_open_interval_raises(pct: float) -> None:
    with pytest.raises(ValueError, match="percentile"):
        admissible_utilization(500.0, SERVICE_MS, pct)
    with pytest.raises(ValueError, match="percentile"):
        waiting_time_quantile_ms(0.5, SERVICE_MS, 1, [50, pct])


@pytest.mark.parametrize("service", [0.0, -10.0, float("nan")])
def test_non_positive_service_raises(service: float) -> None:
    with pytest.raises(ValueError, match="service_ms"):
        admissible_utilization(500.0, [100.0, service], 99)
    with pytest.raises(ValueError, match="service_ms"):
        waiting_time_quantile_ms(0.5, service, 1, 99)


@pytest.mark.parametrize("servers", [0, -1, 1.5, float("nan"), float("inf")])
def test_bad_server_count_raises(servers: float) -> None:
    with pytest.raises(ValueError, match="servers"):
        admissible_utilization(500.0, SERVICE_MS, 99, servers)
    with pytest.raises(ValueError, match="servers"):
        erlang_c(servers, 0.5)


def test_other_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="cv_service"):
        admissible_utilization(500.0, SERVICE_MS, 99, 1, 0.0, -0.1)
    with pytest.raises(ValueError, match="extra_ms"):
        admissible_utilization(500.0, SERVICE_MS, 99, 1, -1.0)
    with pytest.raises(ValueError, match="rho_max"):
        admissible_utilization(500.0, SERVICE_MS, 99, rho_max=1.0)
    with pytest.raises(ValueError, match="ttft_target_ms"):
        admissible_utilization(float("nan"), SERVICE_MS, 99)
    with pytest.raises(ValueError, match="rho"):
        waiting_time_quantile_ms(-0.1, SERVICE_MS, 1, 99)
    with pytest.raises(ValueError, match="offered load"):
        erlang_c(2, -1.0)


@pytest.mark.parametrize("levels", [2, 3, 5, 7])
def test_subtree_bisection_is_bit_identical_to_one_step_at_a_time(levels: int) -> None:
    """_bisect_feasible_end decides several bisection levels per feasibility call (the
    scalar path's speed-up); the rho it returns must be exactly the plain bisection's."""
    from planner.perf import queueing

    rng = np.random.default_rng(7)
    n = 300
    target = rng.uniform(50.0, 3000.0, n)
    service = rng.uniform(10.0, 800.0, n)
    pct = rng.choice([50.0, 90.0, 95.0, 99.0, 99.9], n)
    c = rng.integers(1, 48, n).astype(float)
    cv2 = rng.uniform(0.0, 2.0, n) ** 2
    tail = 1.0 - pct / 100.0
    slack = (target - service) / service

    def feasible(rho: np.ndarray) -> np.ndarray:
        return queueing._quantile_units(rho, c, cv2, tail) <= slack

    lo, hi = np.zeros(n), np.full(n, 0.95)
    for _ in range(queueing._RHO_BISECTION_STEPS):  # the textbook loop, written out
        mid = 0.5 * (lo + hi)
        ok = feasible(mid)
        lo, hi = np.where(ok, mid, lo), np.where(ok, hi, mid)
    got = queueing._bisect_feasible_end(feasible, np.zeros(n), np.full(n, 0.95), levels)
    assert np.array_equal(got, lo)
    assert np.count_nonzero((lo > 0) & (lo < 0.95)) > 0  # interior answers were exercised
    # A scalar call (the subtree path) agrees with the vectorised one element by element.
    scalar = [
        admissible_utilization(target[i], service[i], pct[i], c[i], 0.0, np.sqrt(cv2[i]))
        for i in range(20)
    ]
    vector = admissible_utilization(
        target[:20], service[:20], pct[:20], c[:20], 0.0, np.sqrt(cv2[:20])
    )
    assert np.array_equal(np.asarray(scalar).ravel(), vector)
