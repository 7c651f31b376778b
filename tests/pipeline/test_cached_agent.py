"""The agent is the cache: a warm turn reads nothing from the database and writes once, and
every change made elsewhere (the memory keeper, the CLI, a restart) reaches it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import event
from typer.testing import CliRunner

from bot.cli import app as cli
from bot.clock import VirtualClock
from bot.gateway.memory import MemoryGateway
from bot.models import CustomerKey, Role
from bot.pipeline.inbox import Fed
from bot.stores.memory_base import Fact
from tests.fakes.pipeline import START, make_settings, pipeline

ANA = "+5215512345678"
QUIET = {"insights": False, "summarize_after_messages": 500, "keep_recent_messages": 10}


class Statements:
    """Every SQL statement the daemon's database sees, grouped by transaction: through the
    engine (an event listener) and through the SQLite writer thread (a trace callback)."""

    def __init__(self) -> None:
        self.on = False
        self.engine_tx: dict[int, list[str]] = {}
        self.raw_tx: list[str] = []
        self.committed: list[list[str]] = []
        self.all: list[str] = []

    def _record(self, tx: list[str], sql: str) -> None:
        if self.on:
            tx.append(sql)
            self.all.append(sql)

    async def attach(self, app: Any) -> None:
        self.watch(app.unit.db.engine.sync_engine)
        if app.unit.followups is not None:  # the follow-up job store has an engine of its own
            self.watch(app.unit.followups.table.store.engine)
        raw = app.unit.db.raw_writer
        if raw is not None:
            await raw.run(lambda cur: cur.connection.set_trace_callback(self._trace))
        if not app.unit.db.is_sqlite:
            self.watch_driver(app.unit.db)

    def watch(self, engine: Any) -> None:
        @event.listens_for(engine, "before_cursor_execute")
        def execute(conn: Any, cursor: Any, sql: str, *args: Any) -> None:
            self._record(self.engine_tx.setdefault(id(conn), []), sql)

        @event.listens_for(engine, "commit")
        def commit(conn: Any) -> None:
            self._close(self.engine_tx.pop(id(conn), []))

        @event.listens_for(engine, "rollback")
        def rollback(conn: Any) -> None:
            self.engine_tx.pop(id(conn), None)

    def watch_driver(self, db: Any) -> None:
        """Statements run on a pooled connection's asyncpg connection (the per-message
        writes on PostgreSQL) skip the engine's events: asyncpg's query logger sees them,
        with the BEGIN and COMMIT of every transaction (the engine's statements between
        them are prepared statements it does not log, and are seen above). Those writes
        keep their connections checked out between messages: the ones kept already are
        watched here, the ones checked out later as they are."""
        watched: set[int] = set()

        def watch(driver: Any) -> None:
            if id(driver) not in watched:
                watched.add(id(driver))
                tx: list[list[str] | None] = [None]  # the connection's open transaction
                driver.add_query_logger(lambda query: self._logged(tx, query.query))

        for _, driver in db._kept:
            watch(driver)

        @event.listens_for(db.engine.sync_engine, "checkout")
        def checkout(dbapi_conn: Any, *args: Any) -> None:
            watch(dbapi_conn.driver_connection)

    def _logged(self, tx: list[list[str] | None], sql: str) -> None:
        head = sql.lstrip().upper()
        if head.startswith("BEGIN"):
            tx[0] = []
        elif head.startswith("COMMIT"):
            self._close(tx[0] or [])
            tx[0] = None
        elif head.startswith("ROLLBACK"):
            tx[0] = None
        elif tx[0] is None:  # a statement on its own commits itself
            self._record(alone := [], sql)
            self._close(alone)
        else:
            self._record(tx[0], sql)

    def _trace(self, sql: str) -> None:
        if sql.startswith("BEGIN"):
            self.raw_tx = []
        elif sql == "COMMIT":
            self._close(self.raw_tx)
        else:
            self._record(self.raw_tx, sql)

    def _close(self, tx: list[str]) -> None:
        if self.on and tx:
            self.committed.append(tx)

    def ours(self, sql: str) -> bool:
        # The heartbeat `wabot status` reads is the daemon's, not the turn's.
        return "heartbeats" not in sql

    @property
    def selects(self) -> list[str]:
        return [s for s in self.all if self.ours(s) and s.lstrip().upper().startswith("SELECT")
                and "pg_advisory_xact_lock" not in s]  # a lock, not a read

    @property
    def writes(self) -> list[list[str]]:
        return [tx for tx in self.committed if any(self.ours(s) for s in tx)]


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"memory": QUIET, "followups": {"enabled": False}}


async def test_a_warm_turn_reads_nothing_and_writes_once(db_url, tmp_path, openai_server,
                                                         tenant):
    # The built-in lifecycle rules on: refreshing them after the turn reads the customer's
    # pending jobs from the scheduler's cache, and leaves the "lead_silent" job where it is
    # (it moves by less than its slack; it is moved when it falls due, see RuleRefresh).
    settings = make_settings(db_url, tmp_path, openai_server, tenant, memory=QUIET)
    assert [r.name for r in settings.followups.rules] == [
        "lead_silent", "after_purchase", "customer_inactive"]
    async with pipeline(settings) as p:
        await p.say(ANA, "hola", push_name="Ana")
        await p.settle()  # the first turn loads (and creates) the agent
        seen = Statements()
        await seen.attach(p.app)
        await p.say(ANA, "do you have the blue one?")  # journaled and committed here
        seen.on = True
        await p.settle()
        seen.on = False
        assert p.texts_to(ANA) == ["OK: hola", "OK: do you have the blue one?"]
        assert seen.selects == []
        [turn] = seen.writes  # the job table (APScheduler's own engine) is not written
        tx = " ".join(turn)
        for table in ("memory_messages", "customers", "usage_daily", "journal", "runs"):
            assert table in tx
        assert [fu.kind for fu in await p.app.unit.followups.pending(ANA)] == ["lead_silent"]
        # …and what it wrote is what the database holds.
        key = CustomerKey(settings.tenant, ANA)
        history = await p.app.unit.memory.recent(key, 10)
        assert [m.text for m in history] == ["hola", "OK: hola", "do you have the blue one?",
                                             "OK: do you have the blue one?"]
        customer = await p.app.unit.customers.get(key)
        assert customer is not None and customer.msgs_in == 2 and customer.msgs_out == 2
        assert await p.app.unit.customers.journal_count(settings.tenant, START, "answered") == 2
        runs = await p.app.unit.runs.for_customer(key)
        assert [r["reply"] for r in runs] == ["OK: do you have the blue one?", "OK: hola"]


async def test_a_pause_from_the_cli_reaches_a_cached_agent_before_its_next_reply(
        db_url, tmp_path, openai_server, tenant, monkeypatch):
    state = tmp_path / "state"
    settings = make_settings(db_url, state, openai_server, tenant, memory=QUIET)
    for name, value in {"WABOT_STATE_DIR": str(state), "WABOT_DATABASE_URL": db_url,
                        "WABOT_TENANT": tenant}.items():
        monkeypatch.setenv(name, value)
    async with pipeline(settings) as p:
        await p.say(ANA, "hola")
        await p.settle()
        assert p.texts_to(ANA) == ["OK: hola"]
        gate = openai_server.hold()
        await p.say(ANA, "y el precio?")
        turn = asyncio.create_task(p.settle())
        await gate.wait_arrived()  # the agent is composing its reply right now
        result = await asyncio.to_thread(CliRunner().invoke, cli, ["pause", ANA])
        assert result.exit_code == 0, result.output
        gate.release()
        await turn
        assert p.texts_to(ANA) == ["OK: hola"]  # held back: the owner took over
        assert await p.app.unit.inbox.feed(p.message(ANA, "hello?")) is Fed.PAUSED


async def test_memory_work_updates_the_cached_profile(settings, openai_server):
    async with pipeline(settings) as p:
        key = CustomerKey(settings.tenant, ANA)
        await p.say(ANA, "hola")
        await p.settle()
        async with p.app.unit.registry.use(key) as agent:
            first_seq = agent.window[0].seq
        await p.app.unit.memory.merge_facts(key, [Fact("dog_name", "Pixel", "detail")])
        await p.app.unit.memory.save_summary(key, "Ana greeted us.", first_seq)
        agent = p.app.unit.registry.peek(key)
        assert agent is not None
        assert agent.profile.facts["dog_name"].value == "Pixel"
        assert agent.profile.summary == "Ana greeted us."
        assert [m.seq for m in agent.window if m.seq <= first_seq] == []
        await p.say(ANA, "remember my dog?")
        await p.settle()
        prompt = openai_server.chat_requests()[-1]["messages"][0]["content"]
        assert "Pixel" in prompt and "Ana greeted us." in prompt


async def test_eviction_and_reload_keep_everything(settings, openai_server):
    async with pipeline(settings) as p:
        key = CustomerKey(settings.tenant, ANA)
        await p.say(ANA, "hola", push_name="Ana")
        await p.settle()
        await p.app.unit.memory.merge_facts(key, [Fact("shoe_size", "24", "detail")])
        await p.say(ANA, "busco tenis azules")
        await p.settle()
        before = p.app.unit.registry.peek(key)
        assert before is not None
        cached = (before.customer.model_dump() if before.customer else None,
                  {k: (f.value, f.category) for k, f in before.profile.facts.items()},
                  before.profile.summary,
                  [(m.seq, m.role, m.text) for m in before.window])
        await p.advance(31 * 60)
        assert key not in p.app.unit.registry
        async with p.app.unit.registry.use(key) as after:
            reloaded = (after.customer.model_dump() if after.customer else None,
                        {k: (f.value, f.category) for k, f in after.profile.facts.items()},
                        after.profile.summary,
                        [(m.seq, m.role, m.text) for m in after.window])
        assert reloaded == cached
        assert [r for _, r, _ in reloaded[3]] == [Role.CUSTOMER, Role.AGENT] * 2


async def test_a_crash_between_journal_commit_and_reply_is_answered_after_restart(
        settings, openai_server, tmp_path):
    clock = VirtualClock(START)
    gateway = MemoryGateway(clock)
    async with pipeline(settings, clock=clock, gateway=gateway) as p:
        await p.say(ANA, "hola")
        await p.settle()
        await p.say(ANA, "¿tienen envíos?")  # committed to the journal, turn not run yet
        # The process dies here: nothing after the journal commit happens.
        p.app.unit.inbox.close()
        for task in list(p.app.unit.inbox.tasks):
            task.cancel()
        await asyncio.gather(*p.app.unit.inbox.tasks, return_exceptions=True)
    assert gateway.texts(gateway.chat_for(ANA)) == ["OK: hola"]
    async with pipeline(settings, clock=clock, gateway=gateway) as p:
        await p.settle()
        assert p.texts_to(ANA) == ["OK: hola", "OK: ¿tienen envíos?"]
        key = CustomerKey(settings.tenant, ANA)
        texts = [m.text for m in await p.app.unit.memory.recent(key, 10)]
        assert texts == ["hola", "OK: hola", "¿tienen envíos?", "OK: ¿tienen envíos?"]
