"""Execute one notebook headless with the tslab kernel (restart-and-run-all) and save the executed copy.

    .venv/bin/python tools/execute.py IN.ipynb OUT.ipynb [--timeout SECONDS]

A cell that throws, or fails to type-check, stops the run with exit 1 and names the cell.
"""
import sys
import time

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError


def main() -> int:
    src, dst = sys.argv[1], sys.argv[2]
    timeout = int(sys.argv[sys.argv.index("--timeout") + 1]) if "--timeout" in sys.argv else 600
    nb = nbformat.read(src, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="tslab", allow_errors=False,
                            record_timing=False, resources={"metadata": {"path": "notebooks"}})
    start = time.time()
    try:
        client.execute()
    except CellExecutionError as e:
        print(f"execute: {src} failed: {str(e).strip().splitlines()[-1] if str(e).strip() else e}", file=sys.stderr)
        print(str(e)[-3000:], file=sys.stderr)
        return 1
    # tslab sends a cell's own stdout and a rich display as separate outputs; nothing to clean except
    # the kernel's timing metadata, which would make two runs differ.
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
    nbformat.write(nb, dst)
    print(f"execute: {src} ran in {time.time() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
