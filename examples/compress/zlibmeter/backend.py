# A PEP 517/660 build backend in a few lines (standard library only), so this example
# package installs editable with no setuptools and no network: pip install -e .
import base64, hashlib, os, time, zipfile

NAME, VERSION = "zlibmeter", "0.1"
HERE = os.path.dirname(os.path.abspath(__file__))


def _h(b):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(b).digest()).rstrip(b"=").decode()


def _wheel(directory, files):
    di = f"{NAME}-{VERSION}.dist-info"
    files = dict(files)
    files[f"{di}/METADATA"] = f"Metadata-Version: 2.1\nName: {NAME}\nVersion: {VERSION}\n".encode()
    files[f"{di}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: herd-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    record = "".join(f"{p},{_h(c)},{len(c)}\n" for p, c in files.items()) + f"{di}/RECORD,,\n"
    files[f"{di}/RECORD"] = record.encode()
    name = f"{NAME}-{VERSION}-py3-none-any.whl"
    # Reproducible, as real backends are: SOURCE_DATE_EPOCH fixes the entries' times.
    when = time.gmtime(max(int(os.environ.get("SOURCE_DATE_EPOCH", time.time())), 315532800))[:6]
    with zipfile.ZipFile(os.path.join(directory, name), "w") as z:
        for p, c in files.items():
            z.writestr(zipfile.ZipInfo(p, when), c)
    return name


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    with open(os.path.join(HERE, NAME, "__init__.py"), "rb") as f:
        return _wheel(wheel_directory, {f"{NAME}/__init__.py": f.read()})


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    return _wheel(wheel_directory, {f"{NAME}.pth": (HERE + "\n").encode()})
