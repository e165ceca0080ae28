"""Run inside vLLM's environment: does vLLM's own argument and model-config parsing accept this
``vllm serve`` argv? Prints ``OK <quantization>`` or ``ERR <first line of the error>``.

Usage: python vllm_config_check.py ARG...   (the argv after ``vllm serve``)
"""

import sys

from vllm.engine.arg_utils import EngineArgs
from vllm.utils.argparse_utils import FlexibleArgumentParser


def main(argv: list[str]) -> None:
    parser = EngineArgs.add_cli_args(FlexibleArgumentParser())
    parser.add_argument("model_tag", nargs="?")
    parser.add_argument("--host")  # the server's own flags, not engine arguments
    parser.add_argument("--port")
    args = parser.parse_args(argv)
    args.model = args.model_tag or args.model
    try:
        config = EngineArgs.from_cli_args(args).create_model_config()
    except Exception as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        print("ERR", lines[1] if len(lines) > 1 else lines[0])
        return
    print("OK", config.quantization)


if __name__ == "__main__":
    main(sys.argv[1:])
