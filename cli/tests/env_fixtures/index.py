# Lays out a PEP 503 "simple" index over a directory of wheels: index.py ROOT
# (wheels in ROOT/files, pages in ROOT/simple), then python3 -m http.server serves ROOT.
import os, re, sys

root = sys.argv[1]
files = sorted(os.listdir(os.path.join(root, "files")))
projects = {}
for f in files:
    projects.setdefault(re.sub(r"[-_.]+", "-", f.split("-")[0]).lower(), []).append(f)
for name, fs in projects.items():
    os.makedirs(os.path.join(root, "simple", name), exist_ok=True)
    links = "".join(f'<a href="../../files/{f}">{f}</a>\n' for f in fs)
    with open(os.path.join(root, "simple", name, "index.html"), "w") as out:
        out.write(f"<html><body>\n{links}</body></html>\n")
with open(os.path.join(root, "simple", "index.html"), "w") as out:
    out.write("<html><body>\n" + "".join(f'<a href="{n}/">{n}</a>\n' for n in projects) + "</body></html>\n")
