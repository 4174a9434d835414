"""The benchmark's result as the table PERFORMANCE.md quotes."""

from __future__ import annotations

from typing import Any

from bench.history_run import lines as history_lines
from bench.scans import summary


def _saturated(lat: dict[str, Any]) -> str:
    behind = lat.get("caught_up_after_s", 0.0)
    return f"; SATURATED: caught up {behind} s after the last send" if behind >= 0.5 else ""


def _per_order(drain: dict[str, Any], orders: int) -> str:
    return " + ".join(
        f"{1000 * v / orders:.2f}" for _k, v in sorted(drain["server_cpu_seconds"].items())
    )


def _read_api(api: dict[str, Any] | None) -> list[str]:
    if not api:
        return []
    rows = []
    beside = api.get("beside")
    worker = f"worker taking {beside['sent_rate']} messages/s" if beside else "worker idle"
    if api.get("api_cpu_ms_per_request") is not None:
        worker += (
            f"; API {api['api_cpu_ms_per_request']} CPU ms/request, machine "
            f"{api['machine_cpu_busy_percent']}% busy"
        )
    for name, path in (("service_mail", "/v1/service-mails/{id}"), ("quote", ".../quote")):
        c = api["calls"][name]
        rows.append(
            f"| read API: GET {path}, open loop ({api['sent_rate']} req/s of both, "
            f"{api['seconds']:g} s, {worker}) | | p50 {c.get('p50_ms')} / p99 "
            f"{c.get('p99_ms')} / max {c.get('max_ms')} ms; {c['errors']} errors of "
            f"{c.get('n', 0) + c['errors']} |"
        )
    return rows


def table(r: dict[str, Any]) -> str:
    base, quota = r["baseline"], r["quota_worker"]
    o = r["options"]
    lines = [
        f"quota-worker benchmark: {r['target']}; {o['processes']} process(es) x "
        f"{o['pool']} {o['concurrency']}; {o['mails']} Service Mails, {o['orders']} orders",
        "",
        "| figure | no-op baseline | quota-worker |",
        "| --- | ---: | ---: |",
        f"| messages | {base['messages']} | {quota['messages']} |",
        f"| messages/s | {base['rate']} | {quota['rate']} |",
        f"| ratio (quota / baseline) | | **{r['ratio']}** |",
        f"| orders completed/s | | {r['orders_per_second']} |",
        f"| CPU ms per order (all worker processes) | {r['baseline_cpu_ms_per_order']} | "
        f"{r['cpu_ms_per_order']} |",
        f"| server CPU ms per order ({', '.join(sorted(quota['server_cpu_seconds']))}) | "
        f"{_per_order(base, o['orders'])} | {_per_order(quota, o['orders'])} |",
        f"| RSS of all worker processes, start → after 1/5 → end of drain, MB | "
        f"{base['rss_mb_start']} → {base['rss_mb_warm']} → {base['rss_mb_end']} | "
        f"{quota['rss_mb_start']} → {quota['rss_mb_warm']} → {quota['rss_mb_end']} |",
        f"| peak RSS per process, MB | {max(base['peak_rss_mb'], default=0)} | "
        f"{max(quota['peak_rss_mb'], default=0)} |",
    ]
    for lat in r["latency"]:
        lines.append(
            f"| payment → event at {int(lat['share'] * 100)}% of peak "
            f"({lat['sent_rate']} msg/s sent) | | p50 {lat.get('p50_ms')} / p95 "
            f"{lat.get('p95_ms')} / p99 {lat.get('p99_ms')} / max {lat.get('max_ms')} ms"
            f"{'' if not lat['missing'] else ', ' + str(lat['missing']) + ' missing'}"
            f"; producer + reader {lat.get('producer_cpu_ms_per_message')} CPU ms/message"
            f"{_saturated(lat)} |"
        )
    lines.append(f"| database reads of the drain | | "
                 f"{summary(r.get('database_scans'), quota['messages'])} |")  # fmt: skip
    flood = r.get("refusal_flood")
    if flood:
        lines.append(
            f"| {flood['refused']:,} refused messages, then one good one: time to the good "
            f"one's event | | {flood['seconds_to_good_event']} s ({flood['refused_per_second']} "
            f"refused/s, {flood['dead_lettered']:,} dead letters; valid messages drained at "
            f"{quota['rate']}/s) |"
        )
    lines.extend(_read_api(r.get("read_api")))
    lines.extend(_read_api(r.get("read_api_draining")))
    floor = r["database_floor"]
    servers = ", ".join(f"{k} {v}" for k, v in sorted(floor["server_cpu_ms_per_message"].items()))
    lines.append(f"| database floor (bus in one process, no Celery), messages/s | | "
                 f"{floor['rate']} (CPU ms per message: bench process "
                 f"{floor['cpu_ms_per_message']}; {servers or 'no server'}) |")  # fmt: skip
    lines.append(f"| outcomes | | {quota['outcomes']} |")
    return "\n".join(lines + history_lines(r))
