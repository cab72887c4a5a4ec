"""The production loop on SciFact, through the real HTTP server, with simulated users who click by the qrels.

Phases (each writes its numbers into `benchmarks/results/simulate_scifact.json` as soon as it ends; `--phases`
picks some, and a rerun reuses the project, collections and loop runs kept under `benchmarks/.scratch/simulate`):

- `feedback`: users search the SciFact *train* queries on the champion's collection (`POST /v1/collections/.../search`)
  and click by the train qrels with a position-biased cascade (`POST /v1/feedback`): the loop's training input.
- `drift`: a reference window of SciFact test queries, then >= 20 windows of other SciFact queries (no drift) and
  >= 20 windows of STS-B sentences (another domain), all sent through the server; each window is checked by the
  project's `Monitor` on the query vectors the server logged. False-alarm and detection rates, window size, run time.
- `aa`: repeated A/A experiments (both arms the champion's collection) through `POST /v1/experiments/NAME/search`
  and feedback; the share of runs that declare no winner.
- `loop`: `Project.run_loop` on the logged clicks: pairs -> fine-tune a challenger -> offline gate on the frozen
  SciFact test split (paired test) -> register -> re-embed the served corpus into a new collection -> start an
  experiment; then users are served by that experiment through the server until it decides, and `decide` promotes.
- `abil`: the same better challenger tested by an A/B split and by team-draft interleaving (fresh experiments, the
  same simulated traffic): events each needed for p < alpha, and the sign.
- `shuffled`: a challenger trained on shuffled pairs (each query paired with a random document) is refused by the
  gate and the champion stays.

Run (heavy: two fine-tunings and three embeddings of the SciFact corpus), under the shared CPU lock:

    HF_HUB_OFFLINE=1 flock /tmp/embedops-heavy.lock .venv/bin/python benchmarks/simulate_scifact.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SCIFACT = DATA / "scifact"
STS = DATA / "stsbenchmark"
WORK = ROOT / "benchmarks" / ".scratch" / "simulate"
RESULTS = ROOT / "benchmarks" / "results" / "simulate_scifact.json"
PHASES = ("feedback", "drift", "aa", "loop", "online", "abil", "promote", "shuffled", "power")
CHAMPION_COLLECTION = "champion-v1"


def _print(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _save(key: str, value: Any) -> None:
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    data.setdefault("benchmark", "simulate_scifact")
    data["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}
    data[key] = value
    tmp = RESULTS.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=float))
    tmp.replace(RESULTS)


# -- data -------------------------------------------------------------------------------------------------------
class SciFact:
    """Train and test splits, the served corpus sample (every judged document plus distractors) and STS sentences."""

    def __init__(self, docs: int, seed: int):
        from embedops.data.beir import load_beir
        from embedops.data.sts import load_sts

        self.train = load_beir(SCIFACT, "train")
        self.test = load_beir(SCIFACT, "test")
        judged = {d for rel in list(self.train.qrels.values()) + list(self.test.qrels.values()) for d in rel}
        rng = random.Random(seed)
        others = sorted(set(self.train.corpus) - judged)
        rng.shuffle(others)
        keep = sorted(judged | set(others[: max(0, docs - len(judged))]))
        self.doc_ids = keep
        self.documents = [{"id": d, "text": self.train.corpus[d].full_text} for d in keep]
        self.train_queries = [(q, self.train.queries[q]) for q in sorted(self.train.qrels)]
        self.test_queries = [(q, self.test.queries[q]) for q in sorted(self.test.qrels)]
        pairs = load_sts(STS, "test")
        self.sts = sorted(set(pairs.sentences1) | set(pairs.sentences2))


# -- the project and the server ----------------------------------------------------------------------------------
def project_file() -> Path:
    """The simulation's embedops.yaml (registry, event log and collections beside it)."""
    path = WORK / "project" / "embedops.yaml"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            "use_case: semantic_search\n"
            "registry: models\n"
            "serving:\n  events: events.db\n  collections_root: collections\n", encoding="utf-8")
    return path


def open_project():
    """The simulation's Project (the same object the server and the CLI use)."""
    from embedops import Project

    return Project.open(project_file())


def ensure_champion(project, sf: SciFact) -> str:
    """Register the bundled model as champion v1 and embed the served corpus with it (once)."""
    from embedops.models import bundled_default_path

    reg = project.registry
    try:
        ref = reg.ref_of("champion")
    except Exception:  # noqa: BLE001 - first run: nothing registered yet
        version = reg.register(bundled_default_path(), "scifact-minilm",
                               {"source": "all-MiniLM-L6-v2 (bundled)", "note": "simulation champion"})
        reg.promote(version.ref, "champion", force=True)
        ref = version.ref
    folder = project.config.resolve("collections") / CHAMPION_COLLECTION
    if not folder.exists():
        _print(f"embedding the served corpus ({len(sf.documents)} documents) with the champion {ref}")
        t = time.perf_counter()
        enc = project.load_encoder(str(reg.resolve("champion")), backend="torch")
        project.build_collection(sf.documents, folder, encoder=enc, show_progress=True).close()
        _print(f"champion collection built in {time.perf_counter() - t:.0f} s")
    return ref


class Server:
    """`embedops serve embedops.yaml` on 127.0.0.1 as its own process."""

    def __init__(self):
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        env.pop("EMBEDOPS_EVENTS", None)
        self.log = open(WORK / "server.log", "ab")  # noqa: SIM115 - the child keeps it
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "embedops.cli.main", "serve", str(project_file()), "--no-auth", "--host",
             "127.0.0.1", "--port", str(self.port), "--log-level", "warning"],
            cwd=project_file().parent, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 300
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited ({self.proc.returncode}); see {WORK / 'server.log'}")
            try:
                if httpx.get(self.url + "/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            raise RuntimeError("the server did not become ready in 300 s")
        self.client = httpx.Client(base_url=self.url, timeout=60, limits=httpx.Limits(max_connections=16))

    def search(self, collection: str, query: str, user: str, k: int = 10) -> tuple[list[str], str]:
        """Ranked ids and the request id of one search."""
        r = self.client.post(f"/v1/collections/{collection}/search", json={"query": query, "k": k, "user": user})
        r.raise_for_status()
        body = r.json()
        return [h["id"] for h in body["data"]], body["request_id"]

    def experiment_search(self, name: str, query: str, user: str) -> tuple[list[str], str, str]:
        """Ranked ids, request id and arm of one search served by experiment `name`."""
        r = self.client.post(f"/v1/experiments/{name}/search", json={"query": query, "user": user})
        r.raise_for_status()
        body = r.json()
        return [h["id"] for h in body["data"]], body["request_id"], body["arm"]

    def click(self, request_id: str, doc_id: str, rank: int, user: str) -> None:
        """One click as feedback."""
        r = self.client.post("/v1/feedback", json={"request_id": request_id, "kind": "click", "doc_id": doc_id,
                                                   "rank": rank, "user": user})
        r.raise_for_status()

    def report(self, name: str) -> dict[str, Any]:
        """`GET /v1/experiments/NAME`."""
        r = self.client.get(f"/v1/experiments/{name}")
        r.raise_for_status()
        return r.json()

    def stop(self) -> None:
        """SIGTERM (the event log is flushed on shutdown), SIGKILL after 60 s."""
        self.client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


def wait_logged(project, at_least: int, table: str = "requests", timeout: float = 60) -> None:
    """Until the server's event writer has stored `at_least` rows (it batches off the request path)."""
    log = project.event_log()
    deadline = time.time() + timeout
    while log.count(table) < at_least and time.time() < deadline:
        time.sleep(0.2)


def users(n: int, seed: int, prefix: str):
    """Simulated users with their own patience and click propensity."""
    from embedops.experiment import SimulatedUser

    return SimulatedUser.population(n, seed=seed, prefix=prefix)


def _pool_map(fn, items, workers: int = 8) -> list[Any]:
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(fn, items))


# -- phases ------------------------------------------------------------------------------------------------------
def phase_feedback(server: Server, project, sf: SciFact, args) -> dict[str, Any]:
    """Users search the train queries on the champion's collection and click by the train qrels."""
    population = users(200, args.seed, "fb")
    rng = random.Random(args.seed)
    jobs = [(qid, text, population[rng.randrange(len(population))])
            for _ in range(args.feedback_passes) for qid, text in sf.train_queries]
    rng.shuffle(jobs)
    before = project.event_log().count("requests")

    def one(job):
        qid, text, user = job
        ids, rid = server.search(CHAMPION_COLLECTION, text, user.user_id)
        clicks = user.clicks(ids, sf.train.qrels.get(qid, {}))
        for doc in clicks:
            server.click(rid, doc, ids.index(doc) + 1, user.user_id)
        return len(clicks)

    t0 = time.time()
    clicks = _pool_map(one, jobs)
    t1 = time.time()
    wait_logged(project, before + len(jobs))
    out = {"searches": len(jobs), "clicks": int(sum(clicks)), "searches_with_click": int(sum(c > 0 for c in clicks)),
           "start": t0, "end": t1 + 1.0, "seconds": round(t1 - t0, 1),
           "searches_per_s": round(len(jobs) / (t1 - t0), 1)}
    _print(f"feedback: {out['searches']} searches, {out['clicks']} clicks in {out['seconds']} s")
    return out


def _send_window(server: Server, texts: list[str], user_prefix: str) -> tuple[float, float]:
    t0 = time.time()
    _pool_map(lambda i_t: server.search(CHAMPION_COLLECTION, i_t[1], f"{user_prefix}{i_t[0] % 50}"),
              list(enumerate(texts)))
    return t0, time.time()


def phase_drift(server: Server, project, sf: SciFact, args) -> dict[str, Any]:
    """Reference window, no-drift windows (other SciFact queries) and drifted windows (STS-B), each monitored."""
    from embedops.monitor import Monitor

    rng = random.Random(args.seed + 1)
    size, n = args.window, args.windows
    reference = [t for _, t in sf.test_queries]
    pool = [t for _, t in sf.train_queries]
    rng.shuffle(pool)
    if len(pool) < n * size:
        raise SystemExit(f"{len(pool)} train queries cannot fill {n} windows of {size}")
    sts = list(sf.sts)
    rng.shuffle(sts)
    before = project.event_log().count("requests")
    ref_span = _send_window(server, reference, "ref")
    spans = []
    for w in range(n):
        spans.append(("none", _send_window(server, pool[w * size:(w + 1) * size], "nd")))
        spans.append(("sts", _send_window(server, sts[w * size:(w + 1) * size], "st")))
    wait_logged(project, before + len(reference) + 2 * n * size)
    log = project.event_log()
    rows = []
    t_check = time.perf_counter()
    for kind, (a, b) in spans:
        t = time.perf_counter()
        report = Monitor(log, window_s=(b - a) + 1e-3, min_vectors=size // 2).run(
            a, b + 1e-3, reference=(ref_span[0], ref_span[1] + 1e-3), alert=False)
        drift = [w.drift for w in report.windows if w.drift is not None]
        if len(drift) != 1:
            raise RuntimeError(f"window {a}-{b}: expected one drift result, got {len(drift)}")
        d = drift[0]
        rows.append({"kind": kind, "n": d.n_window, "drifted": bool(d.drifted), "votes": d.votes,
                     "mmd_p": d.mmd_p_value, "auc": d.auc, "auc_limit": d.auc_threshold,
                     "centroid": d.centroid_shift, "centroid_limit": d.centroid_threshold,
                     "seconds": round(time.perf_counter() - t, 3)})
    check_s = time.perf_counter() - t_check
    none = [r for r in rows if r["kind"] == "none"]
    sts_rows = [r for r in rows if r["kind"] == "sts"]
    out = {"window": size, "reference_queries": len(reference), "windows_no_drift": len(none),
           "windows_drift": len(sts_rows),
           "false_alarm_rate": sum(r["drifted"] for r in none) / len(none),
           "detection_rate": sum(r["drifted"] for r in sts_rows) / len(sts_rows),
           "check_seconds_median": float(np.median([r["seconds"] for r in rows])),
           "check_seconds_total": round(check_s, 2),
           "targets": {"false_alarm_rate<=0.10": None, "detection_rate>=0.95": None}, "windows": rows}
    out["targets"] = {"false_alarm_rate<=0.10": out["false_alarm_rate"] <= 0.10,
                      "detection_rate>=0.95": out["detection_rate"] >= 0.95}
    _print(f"drift: false alarms {sum(r['drifted'] for r in none)}/{len(none)}, detected "
           f"{sum(r['drifted'] for r in sts_rows)}/{len(sts_rows)} (window {size}, "
           f"{out['check_seconds_median'] * 1000:.0f} ms per check)")
    return out


def drive(server: Server, name: str, sf: SciFact, population, *, events: int, seed: int, look_every: int = 200,
          stop_when_decided: bool = True) -> dict[str, Any]:
    """Serve `events` requests of experiment `name` to simulated users issuing SciFact test queries; clicks posted.
    Looks at the report every `look_every` events (the sequential rule is valid under peeking)."""
    rng = random.Random(seed)
    sent = 0
    report: dict[str, Any] = {}
    looks = 0
    while sent < events:
        batch = [(sf.test_queries[rng.randrange(len(sf.test_queries))], population[rng.randrange(len(population))])
                 for _ in range(min(look_every, events - sent))]

        def one(job):
            (qid, text), user = job
            ids, rid, _ = server.experiment_search(name, text, user.user_id)
            for doc in user.clicks(ids, sf.test.qrels.get(qid, {})):
                server.click(rid, doc, ids.index(doc) + 1, user.user_id)

        _pool_map(one, batch)
        sent += len(batch)
        time.sleep(0.3)  # let the event writer catch up (it batches off the request path)
        report = server.report(name)
        looks += 1
        if stop_when_decided and report["winner"] != "none":
            break
    return {"sent": sent, "looks": looks, "report": report}


def phase_aa(server: Server, project, sf: SciFact, args) -> dict[str, Any]:
    """Repeated A/A tests: both arms serve the champion's collection; how many declare a winner."""
    # Both arms are the same ranker; the labels differ only because an experiment refuses identical arms (a guard
    # against a typo in a real test).
    arm_a = {"model": "champion", "collection": CHAMPION_COLLECTION}
    arm_b = {"model": "champion-again", "collection": CHAMPION_COLLECTION}
    runs = []
    t0 = time.perf_counter()
    for r in range(args.aa_runs):
        name = f"aa-{args.seed}-{r:02d}"
        try:
            project.experiments.get(name)
        except Exception:  # noqa: BLE001 - not created yet
            project.create_experiment(name, arm_a, arm_b, mode="ab")
        population = users(300, args.seed * 1000 + r, f"aa{r}-")
        res = drive(server, name, sf, population, events=args.aa_events, seed=args.seed * 1000 + r,
                    stop_when_decided=True)
        rep = res["report"]
        runs.append({"name": name, "events": rep["events"], "looks": res["looks"], "winner": rep["winner"],
                     "p_value": rep["p_value"], "effect": rep["effect"]})
        _print(f"A/A {r + 1}/{args.aa_runs}: winner {rep['winner']} after {rep['events']} events "
               f"(p={rep['p_value']})")
    no_winner = sum(r["winner"] == "none" for r in runs)
    out = {"runs": len(runs), "events_per_run": args.aa_events, "no_winner": no_winner,
           "no_winner_rate": no_winner / len(runs), "seconds": round(time.perf_counter() - t0, 1),
           "target_no_winner_rate>=0.90": no_winner / len(runs) >= 0.90, "detail": runs}
    _print(f"A/A: no winner in {no_winner}/{len(runs)} runs")
    return out


def impressions_between(project, start: float, end: float):
    """The logged searches on the champion's collection in [start, end) with their clicks."""
    return [i for i in project.impressions(start=start, end=end)]


def loop_options(project, sf: SciFact, name: str, args):
    """LoopOptions for the simulation: golden = the frozen SciFact test split; the served corpus re-embedded."""
    from embedops.loop import LoopOptions

    return LoopOptions(corpus=SCIFACT, golden=SCIFACT, golden_split="test", name=name,
                       train_overrides={"epochs": args.epochs}, documents=sf.documents,
                       collection_path=project.config.resolve("collections") / f"{name}-challenger",
                       champion_collection=CHAMPION_COLLECTION, mode="interleave", max_events=args.max_events)


def phase_loop(server: Server, project, sf: SciFact, args, results: dict[str, Any]) -> dict[str, Any]:
    """Offline half: clicks -> pairs -> challenger -> gate (frozen SciFact test) -> register -> its collection."""
    fb = results["feedback"]
    imps = impressions_between(project, fb["start"], fb["end"])
    champion_before = project.registry.ref_of("champion")
    t0 = time.perf_counter()
    state = project.run_loop(imps, WORK / "loop-clicks", loop_options(project, sf, "scifact-loop", args),
                             echo=_print, stop_after="embed")
    gate = state.data["steps"].get("gate", {})
    out: dict[str, Any] = {"impressions": len(imps), "champion_before": champion_before, "status": state.status,
                           "steps": dict(state.data["steps"]), "seconds": round(time.perf_counter() - t0, 1),
                           "gate": gate}
    if gate:
        out["ndcg@10"] = {"champion": gate.get("champion"), "challenger": gate.get("challenger"),
                          "diff": gate.get("diff"), "p_value": gate.get("p_value"),
                          "ci": [gate.get("ci_low"), gate.get("ci_high")], "queries": gate.get("queries")}
    _print(f"loop: {state.status}; gate {gate.get('passed')} nDCG@10 {gate.get('champion')} -> "
           f"{gate.get('challenger')}")
    return out


def phase_online(server: Server, project, sf: SciFact, args, results: dict[str, Any]) -> dict[str, Any]:
    """Online half: the loop starts its experiment, simulated users are served by it through the server until it
    decides, then the loop's `decide` promotes the winner (the old champion kept for rollback)."""
    from embedops.loop.run import decide  # the loop's last step, as `embedops loop decide` runs it

    run_dir = WORK / "loop-clicks"
    champion_before = project.registry.ref_of("champion")
    state = project.run_loop(None, run_dir, loop_options(project, sf, "scifact-loop", args), echo=_print,
                             stop_after="experiment")
    name = state.output("experiment")["name"]
    res = drive(server, name, sf, users(300, args.seed + 7, "lp"), events=args.max_events, seed=args.seed + 7)
    final = decide(project, run_dir, echo=_print)
    decision = {"status": final.status, "steps": final.data["steps"].get("decide")}
    after = project.registry.ref_of("champion")
    out = {"experiment": name, "report": res["report"], "sent": res["sent"], "decision": decision,
           "champion_before": champion_before, "champion_after": after, "promoted": after != champion_before}
    _print(f"online: {name} winner {res['report']['winner']} after {res['report']['events']} events; champion "
           f"{champion_before} -> {after}")
    return out


def phase_abil(server: Server, project, sf: SciFact, args, results: dict[str, Any]) -> dict[str, Any]:
    """The better challenger vs the champion: A/B split and interleaving, events needed for a decision."""
    coll = results["loop"]["steps"]["embed"]["collection"]
    name = Path(coll).name
    champ = {"model": results["loop"]["champion_before"], "collection": CHAMPION_COLLECTION}
    chall = {"model": results["loop"]["steps"]["train"]["version"], "collection": name}
    rows = []
    for r in range(args.abil_runs):
        for mode in ("ab", "interleave"):
            metric = args.ab_metric if mode == "ab" else "ctr"  # interleaving credits clicks per team either way
            exp = f"{mode}-{args.seed}-{r}" if mode == "interleave" else f"{mode}-{metric}-{args.seed}-{r}"
            try:
                project.experiments.get(exp)
            except Exception:  # noqa: BLE001 - not created yet
                project.create_experiment(exp, champ, chall, mode=mode, metric=metric)
            seed = args.seed * 100 + r  # the same users and queries for both modes of a run
            res = drive(server, exp, sf, users(300, seed, f"u{r}-"), events=args.ab_max_events, seed=seed,
                        look_every=100 if mode == "interleave" else 200)
            rep = res["report"]
            rows.append({"run": r, "mode": mode, "metric": metric, "winner": rep["winner"], "events": rep["events"],
                         "decided_at": rep["decided_at"], "p_value": rep["p_value"], "effect": rep["effect"],
                         "ci": rep["ci"]})
            _print(f"{mode} run {r}: winner {rep['winner']} at {rep['decided_at']} events (p={rep['p_value']})")
    ab = [x for x in rows if x["mode"] == "ab"]
    il = [x for x in rows if x["mode"] == "interleave"]

    def med(xs):
        vals = [x["decided_at"] for x in xs if x["decided_at"] is not None]
        return float(np.median(vals)) if vals else None

    return {"runs": args.abil_runs, "rows": rows,
            "ab_challenger_wins": sum(x["winner"] == "challenger" for x in ab),
            "interleave_challenger_wins": sum(x["winner"] == "challenger" for x in il),
            "ab_events_median": med(ab), "interleave_events_median": med(il)}


def phase_promote(server: Server, project, sf: SciFact, args, results: dict[str, Any]) -> dict[str, Any]:
    """The loop for a team without the traffic for an online test (`embedops loop run --no-experiment`): clicks ->
    challenger -> offline gate on the frozen SciFact test split -> register -> collection -> promote."""
    fb = results["feedback"]
    imps = impressions_between(project, fb["start"], fb["end"])
    champion_before = project.registry.ref_of("champion")
    options = loop_options(project, sf, "scifact-promote", args)
    options.experiment = False
    t0 = time.perf_counter()
    state = project.run_loop(imps, WORK / "loop-promote", options, echo=_print)
    gate = state.data["steps"].get("gate", {})
    after = project.registry.ref_of("champion")
    out = {"impressions": len(imps), "status": state.status, "gate": gate, "champion_before": champion_before,
           "champion_after": after, "promoted": after != champion_before,
           "seconds": round(time.perf_counter() - t0, 1), "steps": dict(state.data["steps"])}
    if gate:
        out["ndcg@10"] = {"champion": gate.get("champion"), "challenger": gate.get("challenger"),
                          "diff": gate.get("diff"), "p_value": gate.get("p_value"),
                          "ci": [gate.get("ci_low"), gate.get("ci_high")], "queries": gate.get("queries")}
    _print(f"promote: {state.status}; champion {champion_before} -> {after}")
    return out


def phase_shuffled(server: Server, project, sf: SciFact, args, results: dict[str, Any]) -> dict[str, Any]:
    """A challenger trained on shuffled pairs (clicks moved to random documents) must be refused by the gate."""
    from dataclasses import replace

    fb = results["feedback"]
    imps = impressions_between(project, fb["start"], fb["end"])
    rng = random.Random(args.seed + 99)
    shuffled = [replace(i, clicked_ids=frozenset(rng.choice(sf.doc_ids) for _ in i.clicked_ids)) for i in imps]
    # The shuffled clicks are not among the shown results, so they head the shown list: each click is then a
    # (query, random document) pair with no hard negatives, what "trained on shuffled pairs" means.
    shuffled = [replace(i, result_ids=tuple(i.clicked_ids) + tuple(d for d in i.result_ids if d not in i.clicked_ids))
                for i in shuffled]
    champion_before = project.registry.ref_of("champion")
    # A third of the clicks, no mined hard negatives: the point is what the gate does with a model that learnt
    # nothing true, and it keeps this phase's training short.
    shuffled = rng.sample(shuffled, max(1, len(shuffled) // 3))
    options = loop_options(project, sf, "scifact-shuffled", args)
    options.train_overrides = {**options.train_overrides, "hard_negatives": 0}
    state = project.run_loop(shuffled, WORK / "loop-shuffled", options, echo=_print, stop_after="gate")
    gate = state.data["steps"].get("gate", {})
    out = {"status": state.status, "gate": gate, "champion_before": champion_before, "impressions": len(shuffled),
           "champion_after": project.registry.ref_of("champion"),
           "refused": state.status == "refused"}
    out["champion_untouched"] = out["champion_after"] == champion_before
    _print(f"shuffled-pairs challenger: {state.status}; champion {out['champion_after']}")
    return out


def phase_power(server: Server, project, sf: SciFact, args, results: dict[str, Any]) -> dict[str, Any]:
    """Events a decision needs, A/B vs interleaving, on the real rankings of the two models: each model's top 10 for
    every SciFact test query is taken once from its served collection through the HTTP API, then the same simulated
    users and stopping rules run in process (`embedops.experiment.simulate` + `analyze`, what the server's report
    calls), for as many events as a decision takes — far more than this session could send through the server."""
    from embedops.experiment import Experiment, analyze, simulate

    coll = Path(results["loop"]["steps"]["embed"]["collection"]).name
    rankings: dict[str, dict[str, list[str]]] = {}
    for side, name in (("champion", CHAMPION_COLLECTION), ("challenger", coll)):
        pairs = _pool_map(lambda qt, name=name: (qt[1], server.search(name, qt[1], "power")[0]), sf.test_queries)
        rankings[side] = dict(pairs)
    qrels = {text: sf.test.qrels[qid] for qid, text in sf.test_queries}
    queries = [text for _, text in sf.test_queries]
    rankers = {side: (lambda q, side=side: rankings[side][q]) for side in rankings}
    champ = {"model": results["loop"]["champion_before"], "collection": CHAMPION_COLLECTION}
    chall = {"model": results["loop"]["steps"]["train"]["version"], "collection": coll}
    rows = []
    for mode, metric in (("ab", "ctr"), ("ab", "mrr"), ("interleave", "ctr")):
        for r in range(args.power_runs):
            exp = Experiment.new(f"power-{mode}-{metric}-{r}", champ, chall, mode=mode, metric=metric)
            outcomes = simulate(exp, users(1000, 500 + r, f"p{r}-"), queries, qrels, rankers,
                                events=args.power_events, seed=r)
            rep = analyze(exp, outcomes)
            rows.append({"mode": mode, "metric": metric, "run": r, "winner": rep.winner, "decided_at": rep.decided_at,
                         "p_value": rep.p_value, "effect": rep.effect, "events": rep.events})
        got = [x for x in rows if x["mode"] == mode and x["metric"] == metric]
        _print(f"power {mode}/{metric}: challenger found in {sum(x['winner'] == 'challenger' for x in got)}/"
               f"{len(got)} runs, decided at {[x['decided_at'] for x in got]}")
    overlap = float(np.mean([len(set(rankings["champion"][q]) & set(rankings["challenger"][q])) / 10
                             for q in queries]))
    summary_rows = {}
    for mode, metric in (("ab", "ctr"), ("ab", "mrr"), ("interleave", "ctr")):
        got = [x for x in rows if x["mode"] == mode and x["metric"] == metric]
        decided = [x["decided_at"] for x in got if x["winner"] == "challenger"]
        summary_rows[f"{mode}/{metric}"] = {
            "challenger_found": len(decided), "wrong_sign": sum(x["winner"] == "champion" for x in got),
            "runs": len(got), "events_median": float(np.median(decided)) if decided else None}
    return {"runs": args.power_runs, "max_events": args.power_events, "top10_overlap": round(overlap, 3),
            "summary": summary_rows, "rows": rows}


def main() -> None:
    """Run the phases asked for; print the summary table."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--phases", default=",".join(PHASES))
    p.add_argument("--fresh", action="store_true", help="start from an empty scratch folder")
    p.add_argument("--docs", type=int, default=2000, help="served corpus: every judged document + distractors")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--feedback-passes", type=int, default=2)
    p.add_argument("--window", type=int, default=40)
    p.add_argument("--windows", type=int, default=20)
    p.add_argument("--aa-runs", type=int, default=20)
    p.add_argument("--aa-events", type=int, default=400)
    p.add_argument("--abil-runs", type=int, default=2)
    p.add_argument("--max-events", type=int, default=5000, help="the loop's online test: most events served")
    p.add_argument("--ab-max-events", type=int, default=15000, help="A/B vs interleaving: most events per test")
    p.add_argument("--ab-metric", default="mrr", choices=("ctr", "mrr", "success@k"),
                   help="the A/B metric (CTR hardly moves when a better model reorders relevant results)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--power-runs", type=int, default=10)
    p.add_argument("--power-events", type=int, default=100_000)
    args = p.parse_args()
    phases = [x for x in args.phases.split(",") if x]
    if unknown := set(phases) - set(PHASES):
        raise SystemExit(f"unknown phases {sorted(unknown)} (known: {', '.join(PHASES)})")
    if args.fresh:
        shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True, exist_ok=True)

    from embedops._console import quiet_libraries

    quiet_libraries()
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    sf = SciFact(args.docs, args.seed)
    project = open_project()
    ensure_champion(project, sf)
    _save("params", {**vars(args), "served_documents": len(sf.documents), "train_queries": len(sf.train_queries),
                     "test_queries": len(sf.test_queries)})
    server = Server()
    try:
        for phase in phases:
            t = time.perf_counter()
            _print(f"phase {phase}")
            fn = globals()[f"phase_{phase}"]
            needs_results = phase in ("loop", "online", "abil", "promote", "shuffled", "power")
            out = fn(server, project, sf, args, results) if needs_results else fn(server, project, sf, args)
            out["phase_seconds"] = round(time.perf_counter() - t, 1)
            results[phase] = out
            _save(phase, out)
    finally:
        server.stop()
        project.close()
    summary(results)


def summary(results: dict[str, Any]) -> None:
    """The table of what the simulation showed."""
    rows = []
    if d := results.get("drift"):
        rows.append(("drift false alarms (no-drift windows)", f"{d['false_alarm_rate']:.0%} of {d['windows_no_drift']}",
                     "<= 10%"))
        rows.append(("drift detected (STS-B windows)", f"{d['detection_rate']:.0%} of {d['windows_drift']}", ">= 95%"))
    if a := results.get("aa"):
        rows.append(("A/A runs with no winner", f"{a['no_winner']}/{a['runs']}", ">= 90%"))
    if lp := results.get("loop"):
        n = lp.get("ndcg@10", {})
        if n:
            rows.append(("loop: test nDCG@10 champion -> challenger",
                         f"{n['champion']:.4f} -> {n['challenger']:.4f} (p={n['p_value']:.3g})", "higher"))
    if on := results.get("online"):
        rows.append(("loop: experiment decided, champion promoted", f"{on['report']['winner']} after "
                     f"{on['report']['events']} events; {on['champion_before']} -> {on['champion_after']}",
                     "challenger promoted"))
    if pr := results.get("promote"):
        n = pr.get("ndcg@10") or {}
        rows.append(("loop --no-experiment: promoted", f"{pr['champion_before']} -> {pr['champion_after']} (test "
                     f"nDCG@10 {n.get('champion', float('nan')):.4f} -> {n.get('challenger', float('nan')):.4f})",
                     "promoted, higher nDCG@10"))
    if ai := results.get("abil"):
        rows.append(("A/B: challenger found (runs)", f"{ai['ab_challenger_wins']}/{ai['runs']}, median "
                     f"{ai['ab_events_median']} events", "p < 0.05, right sign"))
        rows.append(("interleaving: challenger found (runs)", f"{ai['interleave_challenger_wins']}/{ai['runs']}, "
                     f"median {ai['interleave_events_median']} events", "fewer events than A/B"))
    if pw := results.get("power"):
        for key, v in pw["summary"].items():
            rows.append((f"in-process power, {key}: challenger found",
                         f"{v['challenger_found']}/{v['runs']} (wrong sign {v['wrong_sign']}), median "
                         f"{v['events_median']} events", "interleaving fewest"))
    if s := results.get("shuffled"):
        rows.append(("shuffled-pairs challenger refused", f"{s['refused']} (champion untouched: "
                     f"{s['champion_untouched']})", "True"))
    width = max((len(r[0]) for r in rows), default=10)
    for name, value, target in rows:
        print(f"{name:<{width}}  {value:<40}  {target}")


if __name__ == "__main__":
    main()
