# Writes a minimal wheel by hand (no build tools, no network): mkwheel.py OUTDIR NAME VERSION [PLATFORM_TAG]
import base64, hashlib, os, sys, zipfile
out, name, version = sys.argv[1:4]
tag = sys.argv[4] if len(sys.argv) > 4 else "any"
pytag = "py3-none-" + tag
os.makedirs(out, exist_ok=True)
di = f"{name}-{version}.dist-info"
files = {
    f"{name}/__init__.py": f"__version__ = {version!r}\n",
    f"{di}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
    f"{di}/WHEEL": f"Wheel-Version: 1.0\nGenerator: herd-test\nRoot-Is-Purelib: true\nTag: {pytag}\n",
}
def h(b):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(b).digest()).rstrip(b"=").decode()
record = "".join(f"{p},{h(c.encode())},{len(c.encode())}\n" for p, c in files.items()) + f"{di}/RECORD,,\n"
files[f"{di}/RECORD"] = record
path = os.path.join(out, f"{name}-{version}-{pytag}.whl")
with zipfile.ZipFile(path, "w") as z:
    for p, c in files.items():
        z.writestr(p, c)
print(path)
