"""The `otel-bridge` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["main"]


def _demo(args: argparse.Namespace) -> int:
    try:
        from otel_bridge import demo
    except ImportError as exc:
        print(
            f"otel-bridge demo needs the demo extra ({exc.name} is missing): "
            "pip install 'otel-bridge[demo]'",
            file=sys.stderr,
        )
        return 2
    return demo.run(host=args.host, port=args.port, traffic=not args.no_traffic)


def _pinba_listen(args: argparse.Namespace) -> int:
    from otel_bridge.exporters.pinba.collector import listen

    try:
        return listen(host=args.host, port=args.port, interval=args.interval)
    except OSError as exc:
        print(f"cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1


def _vars(args: argparse.Namespace) -> int:
    from otel_bridge.exporters.expvar.top import watch

    url = args.url if "://" in args.url else f"http://{args.url}"
    if url.rstrip("/").count("/") == 2:  # no path given: Go's default
        url = url.rstrip("/") + "/debug/vars"
    return watch(url, token=args.token, interval=args.interval, once=args.once)


def _load_app(spec: str) -> object:
    import importlib
    import os

    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"--app {spec!r}: expected module:attribute, as uvicorn takes it")
    sys.path.insert(0, os.getcwd())
    module = importlib.import_module(module_name)
    app: object = module
    for part in attribute.split("."):
        app = getattr(app, part)
    return app


def _healthchecks(args: argparse.Namespace) -> int:
    from otel_bridge.config import Settings
    from otel_bridge.errors import ConfigError
    from otel_bridge.exporters.cronitor import CronitorSync, HealthcheckError

    try:
        settings = Settings.from_env()
        from otel_bridge.django._healthchecks import discover_for

        app = _load_app(args.app)
        sync = CronitorSync(settings, app, discover_for(app))
    except (ConfigError, HealthcheckError, ValueError, ImportError, AttributeError) as exc:
        print(f"otel-bridge healthchecks: {exc}", file=sys.stderr)
        return 2
    return run_healthchecks(
        sync,
        public_url=args.public_url,
        dry_run=args.dry_run,
        output_format=args.format,
        validate=args.validate,
        prog="otel-bridge healthchecks",
    )


def run_healthchecks(
    sync: Any,
    *,
    public_url: str | None,
    dry_run: bool,
    output_format: str,
    validate: bool,
    prog: str,
) -> int:
    """Print (dry run) or put the monitors of `sync` (a CronitorSync); the exit status:
    0 done, 1 Cronitor refused or could not be reached, 2 a bad declaration or setting."""
    import json

    from otel_bridge.errors import ConfigError
    from otel_bridge.exporters.cronitor import HealthcheckError
    from otel_bridge.exporters.cronitor._client import payload

    try:
        if public_url:
            sync.settings = sync.settings.replace(cronitor_public_url=public_url)
        monitors = sync.monitors()
    except (ConfigError, HealthcheckError, ValueError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    if dry_run:
        if output_format == "yaml":
            try:
                import yaml
            except ImportError:
                print("--format yaml needs PyYAML: pip install pyyaml", file=sys.stderr)
                return 2
            checks = {
                m["key"]: {k: v for k, v in m.items() if k not in ("key", "type")} for m in monitors
            }
            print(yaml.safe_dump({"checks": checks}, sort_keys=True), end="")
        else:
            print(json.dumps(json.loads(payload(monitors)), indent=2, sort_keys=True))
        print(f"{len(monitors)} monitors; nothing sent (dry run)", file=sys.stderr)
        return 0
    result = sync.put(rollback=validate)
    print(f"{prog}: {result.message}", file=sys.stderr)
    for error in result.errors:
        print(f"  {json.dumps(error)}", file=sys.stderr)
    return 0 if result.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `otel-bridge` command; returns the exit status."""
    parser = argparse.ArgumentParser(prog="otel-bridge", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="serve a demo Starlette app with every view on, plus a little traffic"
    )
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument("--no-traffic", action="store_true", help="do not send demo requests")
    demo.set_defaults(handler=_demo)
    pinba = commands.add_parser("pinba", help="Pinba tools").add_subparsers(
        dest="pinba_command", required=True
    )
    listen = pinba.add_parser(
        "listen", help="a local Pinba collector: decode packets, print reports"
    )
    listen.add_argument("--host", default="127.0.0.1")
    listen.add_argument("--port", type=int, default=30002)
    listen.add_argument("--interval", type=float, default=10.0, help="report window, seconds")
    listen.set_defaults(handler=_pinba_listen)
    healthchecks = commands.add_parser(
        "healthchecks", help="Cronitor check monitors from the app's marked routes"
    ).add_subparsers(dest="healthchecks_command", required=True)
    sync = healthchecks.add_parser("sync", help="put every monitor to Cronitor (once per deploy)")
    sync.add_argument("--app", required=True, help="module:attribute, as uvicorn takes it")
    sync.add_argument("--dry-run", action="store_true", help="print the payload, send nothing")
    sync.add_argument("--format", choices=("json", "yaml"), default="json")
    sync.add_argument(
        "--validate", action="store_true", help="have Cronitor validate only (rollback: true)"
    )
    sync.add_argument("--public-url", help="overrides OTEL_EXPORTER_CRONITOR_PUBLIC_URL")
    sync.set_defaults(handler=_healthchecks)
    variables = commands.add_parser(
        "vars", help="a terminal view of a running app's /debug/vars (a small expvarmon)"
    )
    variables.add_argument("url", help="http://host:port[/path]; the path defaults to /debug/vars")
    variables.add_argument("--interval", type=float, default=2.0)
    variables.add_argument("--token", help="bearer token, if the endpoint requires one")
    variables.add_argument("--once", action="store_true", help="print one screen and exit")
    variables.set_defaults(handler=_vars)
    args = parser.parse_args(argv)
    result: int = args.handler(args)
    return result


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
