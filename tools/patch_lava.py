"""Make lava-nc 0.10.0 importable on Python >= 3.11 (idempotent).

Lava 0.10.0 declares dataclass fields with mutable defaults
(``x: ByteEncoder = ByteEncoder()``) in ``lava/magma/compiler/var_model.py``,
which Python 3.11 rejects at import time.  This rewrites those defaults to
``field(default_factory=ByteEncoder)``.  The file is located through
``sysconfig`` because importing ``lava`` before the patch raises.
"""

import re
import sys
import sysconfig
from pathlib import Path

TARGET = Path(sysconfig.get_paths()["purelib"]) / "lava" / "magma" / "compiler" / "var_model.py"
OLD_IMPORT = "from dataclasses import dataclass, InitVar\n"
NEW_IMPORT = "from dataclasses import dataclass, InitVar, field\n"
DEFAULT = re.compile(r": ByteEncoder = ByteEncoder\(\)")


def main() -> int:
    if not TARGET.is_file():
        print(f"patch_lava: {TARGET} not found; is lava-nc==0.10.0 installed?", file=sys.stderr)
        return 1
    text = TARGET.read_text()
    patched = DEFAULT.sub(": ByteEncoder = field(default_factory=ByteEncoder)", text)
    if OLD_IMPORT in patched:
        patched = patched.replace(OLD_IMPORT, NEW_IMPORT, 1)
    if patched != text:
        TARGET.write_text(patched)
        print(f"patch_lava: patched {TARGET}")
    else:
        print("patch_lava: already patched")
    return 0


if __name__ == "__main__":
    sys.exit(main())
