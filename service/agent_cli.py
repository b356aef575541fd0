"""`python app.py agent ...`: the retailer's support agents, from the command line."""

from __future__ import annotations

import argparse
import json
import sys

from bot.config import Settings
from bot.handoff.service import Handoffs, agent_problem
from service.wiring import build


def add_parser(sub) -> None:
    agent = sub.add_parser("agent", help="support agents for the agent console")
    agent_sub = agent.add_subparsers(dest="agent_command", required=True)
    add = agent_sub.add_parser("add", help="create an agent and print their sign-in token (shown once)")
    add.add_argument("name")
    add.add_argument("--languages", default="en", help="comma-separated, e.g. en,zh-TW (default: en)")
    add.add_argument("--topics", default="", help="comma-separated skills, e.g. returns,orders")
    add.add_argument("--capacity", type=int, default=3, help="open tickets at once (1-50, default 3)")
    agent_sub.add_parser("list", help="the agents, as JSON")


def _words(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def run(settings: Settings, args: argparse.Namespace) -> int:
    db = build(settings).db
    try:
        if args.agent_command == "list":
            print(json.dumps(db.transaction(Handoffs.agents), indent=2, ensure_ascii=False))
            return 0
        languages, topics = _words(args.languages), _words(args.topics)
        problem = agent_problem(args.name, languages, topics, args.capacity)
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return 2
        agent, token = db.transaction(
            lambda s: Handoffs.create_agent(s, args.name.strip(), languages, topics, args.capacity)
        )
        print(f"agent {agent.id} ({agent.name}) created; sign-in token, shown this once:\n{token}")
        return 0
    finally:
        db.close()
