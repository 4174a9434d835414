"""The benchmark's result as the table PERFORMANCE.md quotes."""

from __future__ import annotations

from typing import Any

from bench.batches import curve_lines, sizes_summary
from bench.history_run import lines as history_lines
from bench.scans import summary


def _saturated(lat: dict[str, Any]) -> str:
    behind = lat.get("caught_up_after_s", 0.0)
    return f"; SATURATED: caught up {behind} s after the last send" if behind >= 0.5 else ""


def _per_order(drain: dict[str, Any], orders: int) -> str:
    return " + ".join(
        f"{1000 * v / orders:.2f}" for _k, v in sorted(drain["server_cpu_seconds"].items())
    )


def _read_api(api: dict[str, Any] | None, blank: str = "| ") -> list[str]:
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
            f"{api['seconds']:g} s, {worker}) {blank}| p50 {c.get('p50_ms')} / p99 "
            f"{c.get('p99_ms')} / max {c.get('max_ms')} ms; {c['errors']} errors of "
            f"{c.get('n', 0) + c['errors']} |"
        )
    return rows


def _baselines(r: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The baseline columns: one, or prefetch 1 and the batching worker's prefetch."""
    batch = r.get("baseline_prefetch_batch")
    if not batch:
        return [("no-op baseline", r["baseline"])]
    mark = {r.get("ratio_against"): " (faster)"}
    return [(f"no-op, prefetch 1{mark.get('prefetch_1', '')}", r["baseline_prefetch_1"]),
            (f"no-op, prefetch of batch {batch['batch_max']}{mark.get('prefetch_batch', '')}",
             batch)]  # fmt: skip


def _against(r: dict[str, Any]) -> str:
    batch = r.get("baseline_prefetch_batch")
    if not batch:
        return "baseline"
    if r.get("ratio_against") == "prefetch_batch":
        return f"faster baseline: prefetch of batch {batch['batch_max']}"
    return "faster baseline: prefetch 1"


def table(r: dict[str, Any]) -> str:
    quota = r["quota_worker"]
    o = r["options"]
    bases = _baselines(r)
    blank = "| " * len(bases)  # the baseline cells of a row only quota-worker has

    def row(figure: str, cell: Any, last: Any) -> str:
        return "| " + " | ".join([figure, *(str(cell(b)) for _n, b in bases), str(last)]) + " |"

    batching = f", QUOTA_BATCH_MAX={o['batch_max']}" if o.get("batch_max", 1) > 1 else ""
    lines = [
        f"quota-worker benchmark: {r['target']}; {o['processes']} process(es) x "
        f"{o['pool']} {o['concurrency']}; {o['mails']} Service Mails, {o['orders']} orders"
        f"{batching}",
        "",
        "| figure | " + " | ".join(n for n, _b in bases) + " | quota-worker |",
        "| --- |" + " ---: |" * len(bases) + " ---: |",
        row("messages", lambda b: b["messages"], quota["messages"]),
        row("messages/s", lambda b: b["rate"], quota["rate"]),
        row(
            f"ratio (quota / {_against(r)})",
            lambda b: round(quota["rate"] / b["rate"], 3) if len(bases) > 1 else "",
            f"**{r['ratio']}**",
        ),
        f"| orders completed/s {blank}| {r['orders_per_second']} |",
        row(
            "CPU ms per order (all worker processes)",
            lambda b: round(1000 * b["cpu_seconds"] / o["orders"], 2),
            r["cpu_ms_per_order"],
        ),
        row(
            f"server CPU ms per order ({', '.join(sorted(quota['server_cpu_seconds']))})",
            lambda b: _per_order(b, o["orders"]),
            _per_order(quota, o["orders"]),
        ),
        row(
            "RSS of all worker processes, start → after 1/5 → end of drain, MB",
            lambda b: f"{b['rss_mb_start']} → {b['rss_mb_warm']} → {b['rss_mb_end']}",
            f"{quota['rss_mb_start']} → {quota['rss_mb_warm']} → {quota['rss_mb_end']}",
        ),
        row(
            "peak RSS per process, MB",
            lambda b: max(b["peak_rss_mb"], default=0),
            max(quota["peak_rss_mb"], default=0),
        ),
    ]
    if "batch_sizes" in quota:
        lines.append(f"| batches of the drain {blank}| {sizes_summary(quota['batch_sizes'])} |")
    for lat in r["latency"]:
        lines.append(
            f"| payment → event at {int(lat['share'] * 100)}% of peak "
            f"({lat['sent_rate']} msg/s sent) {blank}| p50 {lat.get('p50_ms')} / p95 "
            f"{lat.get('p95_ms')} / p99 {lat.get('p99_ms')} / max {lat.get('max_ms')} ms"
            f"{'' if not lat['missing'] else ', ' + str(lat['missing']) + ' missing'}"
            f"; producer + reader {lat.get('producer_cpu_ms_per_message')} CPU ms/message"
            f"{_saturated(lat)} |"
        )
        if lat.get("segments"):
            parts = "; ".join(
                f"{name.replace('_', ' ')} {v.get('p50_ms')} / {v.get('p99_ms')} "
                f"(slowest 1%: {v.get('slowest_1pct_mean_ms')})"
                for name, v in lat["segments"].items()
            )
            lines.append(f"| … its parts, p50 / p99 ms {blank}| {parts} |")
        sync = lat.get("disk_sync")
        if sync:
            lines.append(
                f"| … the disk meanwhile: fdatasync of 8 KiB every 20 ms {blank}| p50 "
                f"{sync.get('p50_ms')} / p99 {sync.get('p99_ms')} / max {sync.get('max_ms')} "
                f"ms; {sync['stalls_over_100ms']} stalls over 100 ms ({sync['stalled_s']} s) |"
            )
    lines.append(f"| database reads of the drain {blank}| "
                 f"{summary(r.get('database_scans'), quota['messages'])} |")  # fmt: skip
    flood = r.get("refusal_flood")
    if flood:
        lines.append(
            f"| {flood['refused']:,} refused messages, then one good one: time to the good "
            f"one's event {blank}| {flood['seconds_to_good_event']} s "
            f"({flood['refused_per_second']} refused/s, "
            f"{flood['dead_lettered']:,} dead letters; valid messages drained at "
            f"{quota['rate']}/s) |"
        )
    lines.extend(_read_api(r.get("read_api"), blank))
    lines.extend(_read_api(r.get("read_api_draining"), blank))
    floor = r["database_floor"]
    servers = ", ".join(f"{k} {v}" for k, v in sorted(floor["server_cpu_ms_per_message"].items()))
    lines.append(f"| database floor (bus in one process, no Celery), messages/s {blank}| "
                 f"{floor['rate']} (CPU ms per message: bench process "
                 f"{floor['cpu_ms_per_message']}; {servers or 'no server'}) |")  # fmt: skip
    lines.append(f"| outcomes {blank}| {quota['outcomes']} |")
    curve = curve_lines(r.get("batch_curve") or [], _against(r).removeprefix("faster baseline: "))
    return "\n".join(lines + history_lines(r) + curve)
