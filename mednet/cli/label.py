"""``mednet label setup | serve``: MONAI Label's environment, and a disease's bundles served to annotators."""

from __future__ import annotations

import argparse

from mednet.pipeline.diseases import DISEASES


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``label`` sub-command and its actions."""
    parser = sub.add_parser("label", help="MONAI Label: set up its environment once, then serve a disease's bundles")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    setup = actions.add_parser(
        "setup", help="make MONAI Label's own environment (once; about 5 GB from your package index)",
        description="Make MONAI Label 0.8.5's virtual environment with your pip settings (index, mirrors, "
        "certificates): PyPI's torch and torchvision (which a CPU-only torch cannot replace), monailabel with the "
        "pins it needs, and a link to this mednet. Run again to repair it or after upgrading mednet.",
    )  # fmt: skip
    setup.add_argument("--env", default=None, help="the environment's folder (default $MEDNET_LABEL_ENV, "
                       "else $MEDNET_HOME/label-env)")  # fmt: skip
    setup.set_defaults(run=run_setup)

    serve = actions.add_parser(
        "serve", help="serve a disease's localisation bundle, its whole pipeline and training in MONAI Label",
        description="Make (or reuse) the disease's MONAI Label app and start the server. Models: the localisation "
        "bundle (auto-segmentation), <disease>_pipeline (the label map, with the grading call in the result's "
        "JSON) and a trainer (the annotators' final labels retrain the localisation bundle from the served "
        "weights). Listens on 127.0.0.1 unless --host says otherwise (MONAI Label has no log-in).",
    )  # fmt: skip
    serve.add_argument("--disease", required=True, choices=sorted(DISEASES), help="which disease's bundles")
    serve.add_argument("--studies", required=True, metavar="DIR|JSON",
                       help="a folder of stacked studies (mednet bundle studies), or cases as mednet predict -i "
                       "takes them (folder or datalist; stacked once into APP/studies)")  # fmt: skip
    serve.add_argument(
        "--models",
        metavar="RUN",
        default=None,
        help="serve the weights of a mednet train run (default: the shipped reference weights)",
    )
    serve.add_argument("--app", default=None, help="the app folder (default $MEDNET_HOME/label/<disease>)")
    serve.add_argument("--fresh", action="store_true", help="copy the models again (drops weights retrained there)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument("--env", default=None, help="MONAI Label's environment (default as for setup)")
    serve.set_defaults(run=run_serve)


def run_setup(args: argparse.Namespace) -> int:
    """Make the environment."""
    from mednet.label.environment import setup_environment

    setup_environment(args.env)
    return 0


def run_serve(args: argparse.Namespace) -> int:
    """Prepare the app and its studies, start the server and wait for it (Ctrl-C stops it)."""
    import sys

    from mednet.label.environment import LabelEnvironment
    from mednet.label.serve import prepare_app, prepare_studies, start_server, stop_server, wait_until_ready

    environment = LabelEnvironment(args.env).require()
    app = prepare_app(args.disease, args.app, args.models, args.fresh)
    studies = prepare_studies(args.studies, args.disease, app)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"mednet label serve: warning: listening on {args.host}: anyone who can reach it can read the studies "
              "and run the models (MONAI Label has no log-in)", file=sys.stderr)  # fmt: skip
    process = start_server(environment, app, studies, args.host, args.port)
    url = f"http://{'127.0.0.1' if args.host in ('0.0.0.0', '::') else args.host}:{args.port}"
    try:
        info = wait_until_ready(url, process)
        print(f"MONAI Label serving {', '.join(info.get('models', {}))} at {url} (Ctrl-C stops it)", flush=True)
        return process.wait()
    except KeyboardInterrupt:
        return 130
    finally:
        stop_server(process)
