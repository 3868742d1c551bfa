"""Where corpus text comes from: the named-corpus catalog, the lookup order,
reading files safely, file checksums, and `download`.

A corpus is either a catalog name (`machado`, `sintetico`) or a path to a
`.txt` file or a folder of them. A catalog name is looked up in the folder the
user gave (--corpora-dir, else $RNNLM_CORPORA) and only there, else in the
default places (`candidate_dirs`). `resolve()` turns either into a `CorpusSource`
(an ordered list of files); `read_text()` reads one file. Tokenizing is not
done here (see tokenize.py), nor caching of tokens (see data.py).

The one thing to know before editing: a named corpus folder counts only if
*every* catalog file is there with the catalog's size (a cheap stat). SHA-256
is checked on download and every time data.py computes the cache key: the
hash is always of the bytes, never remembered by path, size or mtime (a
same-size edit with its mtime restored, as `cp -p` or `rsync -t` leave it,
must change the key; hashing Machado's 11 MB takes about 30 ms).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import stat
import sys
import urllib.error
import urllib.parse
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError, command, plural
from .fileio import atomic_write, atomic_write_bytes

REPO_ROOT = Path(__file__).resolve().parents[1]
REPO_CORPORA = REPO_ROOT / "corpora"   # catalogs live here; text under <name>/txt/ is gitignored
# an installed (non-editable) package carries the catalogs as package data (pyproject.toml)
PACKAGE_CATALOGS = Path(__file__).resolve().parent / "corpora"


def catalog_home() -> Path:
    """The folder holding <name>/catalog.json: the package's copy when installed, else the repository's."""
    return PACKAGE_CATALOGS if PACKAGE_CATALOGS.is_dir() else REPO_CORPORA


def default_corpora() -> Path:
    """Where downloads and the generated corpus go by default: the repository's corpora/ in a
    checkout, ./corpora/ for an installed package (never beside site-packages)."""
    return REPO_CORPORA if (REPO_ROOT / "pyproject.toml").is_file() else Path.cwd() / "corpora"
NAMED_CORPORA = ("machado", "sintetico")

_DOWNLOAD_TIMEOUT_S = 30
_CHUNK = 1 << 16


def _urlopen(url, timeout):
    """The network call, a module attribute so that tests can replace it."""
    return urllib.request.urlopen(url, timeout=timeout)


# ---------------------------------------------------------------- catalog


@dataclass(frozen=True)
class CatalogEntry:
    path: str        # relative path inside the corpus folder, '/'-separated
    size: int        # bytes
    sha256: str      # hex digest


@dataclass(frozen=True)
class Catalog:
    name: str
    url_pattern: str             # with {commit} and {path}
    commit: str
    entries: tuple[CatalogEntry, ...]
    home: Path                   # folder holding catalog.json and the manifest

    def url(self, entry: CatalogEntry) -> str:
        # Accented folder names (crítica, crônica) must be percent-encoded.
        return self.url_pattern.format(commit=self.commit,
                                       path=urllib.parse.quote(entry.path, safe="/"))

    @property
    def total_bytes(self) -> int:
        return sum(e.size for e in self.entries)


def load_catalog(name: str) -> Catalog:
    """Read `corpora/<name>/catalog.json` and its manifest (path, size, sha256 per line)."""
    home = catalog_home() / name
    meta_path = home / "catalog.json"
    if not meta_path.is_file():
        raise UserError(f"no catalog for corpus '{name}' at {meta_path}; "
                        f"named corpora with catalogs: machado")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    entries = []
    for lineno, line in enumerate((home / meta["manifest"]).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            path, size, sha = line.split("\t")
            entries.append(CatalogEntry(path, int(size), sha.strip().lower()))
        except ValueError:
            raise UserError(f"{home / meta['manifest']}:{lineno}: expected 'path<TAB>size<TAB>sha256'") from None
    return Catalog(name=name, url_pattern=meta["url_pattern"], commit=meta["commit"],
                   entries=tuple(entries), home=home)


# ---------------------------------------------------------------- lookup


@dataclass
class CorpusSource:
    """The files of one corpus, in a fixed order, and where they were found."""
    name: str                          # catalog name, or the path as given
    root: Path                         # folder the relative names are relative to
    files: list[tuple[str, Path]]      # (relative name, absolute path), sorted by name
    origin: str                        # one line for humans: how it was found
    catalog: Catalog | None = None     # set for catalog corpora (sha256 known)


def default_cache_dir() -> Path | None:
    """The cache folder (caches.cache_root: $RNNLM_CACHE, the per-user cache, a temp folder), or None."""
    from .caches import cache_root
    return cache_root()


def given_corpora_dir(corpora_dir: str | os.PathLike | None = None) -> tuple[Path, str] | None:
    """The corpora folder the user named, with where it came from ("--corpora-dir" or
    "$RNNLM_CORPORA"; the flag wins), or None when neither is given."""
    if corpora_dir:
        return Path(corpora_dir).expanduser(), "--corpora-dir"
    env = os.environ.get("RNNLM_CORPORA")
    if env:
        return Path(env).expanduser(), "$RNNLM_CORPORA"
    return None


def candidate_dirs(name: str, corpora_dir: str | os.PathLike | None = None) -> list[tuple[Path, str]]:
    """Folders that may hold the named corpus, in lookup order, with a label each.

    A folder the user named (--corpora-dir, else $RNNLM_CORPORA) is the only candidate: a corpus
    missing there is an error (find_named), never a silent fall-through to another copy.
    """
    given = given_corpora_dir(corpora_dir)
    if given is not None:
        return [(given[0] / name, given[1])]
    found: list[tuple[Path, str]] = []
    cwd = Path.cwd()
    found += [(REPO_CORPORA / name, "the repository's corpora/"),
              (cwd / "corpora" / name, "./corpora/"),
              (REPO_ROOT.parent / "shared" / "corpora" / name, "../shared/corpora/ beside the repository"),
              (cwd.parent / "shared" / "corpora" / name, "../shared/corpora/ beside the working directory")]
    unique, seen = [], set()
    for path, label in found:
        key = os.path.abspath(path)
        if key not in seen:
            seen.add(key)
            unique.append((path, label))
    return unique


def _missing_from(folder: Path, catalog: Catalog) -> str | None:
    """Why `folder` does not hold the catalog's files (None if it does). Sizes only."""
    if not folder.is_dir():
        if folder.parent.exists() and not folder.parent.is_dir():
            return f"{folder.parent} is a file, not a folder"
        return "no such folder"
    for entry in catalog.entries:
        try:
            size = (folder / entry.path).stat().st_size
        except OSError:
            return f"missing {entry.path}"
        if size != entry.size:
            return f"{entry.path} has {size} {plural(size, 'byte')}, the catalog says {entry.size}"
    return None


def find_named(name: str, corpora_dir=None) -> CorpusSource:
    """Locate a catalog corpus along the lookup order; UserError if no folder has all its files."""
    catalog = load_catalog(name)
    tried = []
    for folder, label in candidate_dirs(name, corpora_dir):
        why = _missing_from(folder, catalog)
        if why is None:
            files = [(e.path, (folder / e.path).resolve()) for e in catalog.entries]
            files.sort(key=lambda item: item[0])
            return CorpusSource(name=name, root=folder.resolve(), files=files,
                                origin=f"{folder} (via {label})", catalog=catalog)
        if given_corpora_dir(corpora_dir) is not None:
            raise UserError(_missing_in_given(name, folder, label, why, corpora_dir))
        if folder.exists():
            tried.append(f"{folder}: {why}")
    where = "; ".join(tried) if tried else "none of " + ", ".join(
        str(f) for f, _ in candidate_dirs(name, corpora_dir)) + " exists"
    raise UserError(f"corpus '{name}' not found ({where}); run '{command()} corpus download {name}' "
                    f"or put its {len(catalog.entries)} {plural(len(catalog.entries), 'file')} under "
                    f"{default_corpora() / name}/ or --corpora-dir DIR/{name}/")


def _shell_word(text: str) -> str:
    """`text` as one shell word inside the single-quoted command of a message: as it is when it needs
    no quoting, else in double quotes (a folder with a space)."""
    if shlex.quote(text) == text:
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$").replace("`", "\\`") + '"'


def _missing_in_given(name: str, folder: Path, label: str, why: str, corpora_dir) -> str:
    """The one line for a named corpus missing from the folder the user gave (--corpora-dir or
    $RNNLM_CORPORA): which folder, where it came from, and what to do."""
    if folder.parent.exists() and not folder.parent.is_dir():
        what = "--corpora-dir" if label == "--corpora-dir" else "RNNLM_CORPORA"
        return (f"corpus '{name}' not found: {folder.parent} (given by {label}) is a file, not a folder; "
                f"give {what} the folder that holds {name}/")
    if label == "--corpora-dir":
        fix = (f"download it there with '{command()} corpus download {name} --corpora-dir "
               f"{_shell_word(str(corpora_dir))}', "
               "or leave out --corpora-dir to search the default places")
    else:
        fix = (f"download it there with '{command()} corpus download {name}', "
               "or unset RNNLM_CORPORA to search the default places")
    return f"corpus '{name}' not found in {folder} (given by {label}: {why}); {fix}"


def download_dir(name: str, corpora_dir=None) -> Path:
    """Where `download` (or the generator) puts a named corpus: <the folder the user gave (--corpora-dir,
    else $RNNLM_CORPORA), else default_corpora()>/<name>, a place the lookup then searches. UserError
    when the folder the user gave is a file."""
    given = given_corpora_dir(corpora_dir)
    if given is not None and given[0].exists() and not given[0].is_dir():
        what = "--corpora-dir" if given[1] == "--corpora-dir" else "RNNLM_CORPORA"
        raise UserError(f"{given[0]} (given by {given[1]}) is a file, not a folder; "
                        f"give {what} a folder to put {name}/ in")
    return (given[0] if given is not None else default_corpora()) / name


def _sintetico_dir(corpora_dir=None) -> Path:
    return download_dir("sintetico", corpora_dir)


def ensure_sintetico(corpora_dir=None) -> Path:
    """The synthetic corpus' folder: the first complete, current copy along the lookup order
    (candidate_dirs: only the folder the user named, if any), else generated into download_dir
    (sintetico.py owns its content)."""
    try:
        from .sintetico import ensure_corpus, is_current
    except ModuleNotFoundError as exc:
        if exc.name not in ("rnnlm.sintetico", __package__ + ".sintetico"):
            raise
        raise UserError("the generated corpus 'sintetico' is not available in this version "
                        "(rnnlm/sintetico.py is missing); use machado or a path to .txt files") from None
    for folder, _ in candidate_dirs("sintetico", corpora_dir):
        if is_current(folder):
            return folder
    return Path(ensure_corpus(_sintetico_dir(corpora_dir)))


def list_txt_files(folder: Path) -> list[tuple[str, Path]]:
    """Every .txt file under `folder` (any case: DUP.TXT too), recursively, folders linked in included (once
    each), sorted by '/'-separated relative name. A subfolder that cannot be read is a UserError (its files
    would be left out unseen); a .txt link that points at nothing is left out with a warning."""
    import os
    files, broken, odd, seen = [], [], [], set()

    def refuse(exc: OSError):
        raise UserError(f"cannot read the folder {exc.filename} inside the corpus {folder}: {exc.strerror}; make "
                        "it readable, or move it out of the corpus folder")
    root = os.path.realpath(folder)
    for top, dirs, names in os.walk(folder, onerror=refuse, followlinks=True):
        real = os.path.realpath(top)
        if real in seen:        # two links to one folder outside: its files once
            dirs[:] = []
            continue
        seen.add(real)
        # a link to a folder inside the corpus is not followed: its files are read at their own place
        dirs[:] = sorted(d for d in dirs if not (os.path.islink(os.path.join(top, d)) and os.path.commonpath(
            [root, os.path.realpath(os.path.join(top, d))]) == root))
        for name in names:
            if not name.lower().endswith(".txt"):
                continue
            p = Path(top) / name
            if p.is_file():
                files.append((p.relative_to(folder).as_posix(), p.resolve()))
            elif p.is_symlink() and not p.exists():
                broken.append(p.relative_to(folder).as_posix())
            elif not p.is_dir():
                odd.append(p.relative_to(folder).as_posix())     # a named pipe, a socket, a device
    if broken:
        warnings.warn(f"left out of the corpus {folder}: {', '.join(sorted(broken))} "
                      f"({'a link' if len(broken) == 1 else 'links'} to nothing)", stacklevel=2)
    if odd:
        warnings.warn(f"left out of the corpus {folder}: {', '.join(sorted(odd))} (not "
                      f"{'a regular file' if len(odd) == 1 else 'regular files'}: a named pipe or a device)",
                      stacklevel=2)
    files.sort(key=lambda item: item[0])
    return files


def resolve(corpus: str, corpora_dir=None) -> CorpusSource:
    """Turn a corpus argument (catalog name, file or folder) into its ordered files.

    Raises UserError for an unknown name, a missing path or a folder with no .txt file.
    """
    if corpus in NAMED_CORPORA:
        if corpus == "sintetico":
            folder = ensure_sintetico(corpora_dir)
            files = list_txt_files(folder)
            if not files:
                raise UserError(f"the generated corpus folder {folder} holds no .txt file; delete it and retry")
            return CorpusSource("sintetico", folder.resolve(), files, f"{folder} (generated)")
        return find_named(corpus, corpora_dir)
    path = Path(corpus).expanduser()
    if not path.exists():
        raise UserError(f"corpus '{corpus}' is neither a named corpus ({', '.join(NAMED_CORPORA)}) "
                        f"nor an existing file or folder")
    if not path.is_dir() and not path.is_file():    # /dev/zero, a FIFO: read twice (checksum, tokens), or never end
        raise UserError(f"corpus {corpus} is not a regular file (a device, a FIFO or a socket); give a text file "
                        "or a folder of .txt files")
    if path.is_dir():
        files = list_txt_files(path)
        if not files:
            raise UserError(f"folder {path} holds no .txt file; point at a folder of UTF-8 .txt files")
        return CorpusSource(str(corpus), path.resolve(), files,
                            f"{path.resolve()} (folder, {len(files)} .txt {'file' if len(files) == 1 else 'files'})")
    return CorpusSource(str(corpus), path.resolve().parent, [(path.name, path.resolve())],
                        f"{path.resolve()} (single file)")


# ---------------------------------------------------------------- reading


# control characters no text holds in number (tab, line feed, vertical tab, form feed and carriage return
# are text): C0 but those, DEL, and C1 (what latin-1 makes of the bytes 0x80-0x9f)
_CONTROL = re.compile("[\x01-\x08\x0e-\x1f\x7f-\x9f]")
MAX_CONTROL_SHARE = 0.05    # above this share of control characters a file is binary (random bytes: 10-23%) ...
MIN_CONTROL = 8             # ... when they are at least this many (a stray byte in a few words is still text)


def _wide_encoding(raw: bytes) -> str | None:
    """"utf-32" or "utf-16" for bytes that open with that encoding's byte-order mark, else None."""
    if raw[:4] in (b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff"):
        return "utf-32"
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return "utf-16"
    return None


def _mostly_utf8(raw: bytes) -> tuple[str, int] | None:
    """(text, number of places that are not UTF-8) when `raw` is UTF-8 but for a few bytes: its valid
    multi-byte characters are at least as many as those places. A cp1252 or latin-1 file has almost none (an accented letter is
    one byte there, followed by ASCII), so it is None for them, and read_text decodes it as such; read so,
    a UTF-8 file with one bad byte would have every accented letter garbled ('Ã£' for 'ã')."""
    text = raw.decode("utf-8-sig", errors="replace")
    bad = text.count("\ufffd") - raw.count("\ufffd".encode("utf-8"))
    multi = sum(1 for ch in text if ord(ch) > 127) - text.count("\ufffd")
    return (text, bad) if 0 < bad <= multi else None


def _utf16_without_bom(raw: bytes) -> str | None:
    """"utf-16le" or "utf-16be" for bytes whose NULs sit at every odd (even) place, as ASCII-heavy text in
    that encoding without its byte-order mark has them, and that decode so; else None."""
    head = raw[:4096]
    if len(head) < 4:
        return None
    for name, zeros, other in (("utf-16le", head[1::2], head[0::2]), ("utf-16be", head[0::2], head[1::2])):
        if zeros.count(0) >= 0.8 * len(zeros) and other.count(0) <= 0.05 * len(other):
            try:
                raw.decode(name)
            except UnicodeDecodeError:
                return None
            return name
    return None


# a text given to a command (evaluate --text, score --file): above this it is a corpus, not a text to score,
# or a device that never ends (/dev/zero); its words as Python strings take about 20 times its bytes
MAX_TEXT_BYTES = 256 << 20


def read_bytes(path, limit: int | None = None, advice: str = "give a smaller file") -> bytes:
    """The bytes of `path`; with `limit`, at most that many (`read_capped`), so that a device or pipe that
    never ends (/dev/zero, `yes |`) is refused instead of filling the memory.

    Errors: UserError "cannot read PATH: <reason>"; UserError "PATH is larger than N MiB ...; <advice>".
    """
    try:
        with _open_saying_when_it_waits(path) as f:
            return f.read() if limit is None else read_capped(f, limit, path, advice)
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None


# how long opening a named pipe may wait for its writer before the wait is said
FIFO_NOTE_S = 1.0


def _open_saying_when_it_waits(path):
    """open(path, "rb"); a named pipe (FIFO: `mkfifo`, the shell's `<(...)`) opens only once something writes
    into it, as `cat` waits for it, so a wait of more than FIFO_NOTE_S seconds is said on stderr, once (what
    it waits for, and that Ctrl-C stops it), instead of the command hanging with nothing said."""
    try:
        fifo = stat.S_ISFIFO(os.stat(path).st_mode)
    except OSError:
        fifo = False        # (open names the reason)
    if not fifo:
        return open(path, "rb")
    import sys
    import threading
    timer = threading.Timer(FIFO_NOTE_S, lambda: print(
        f"note: {path} is a named pipe (FIFO): waiting for something to write into it (Ctrl-C stops)",
        file=sys.stderr, flush=True))
    timer.daemon = True
    timer.start()
    try:
        return open(path, "rb")
    finally:
        timer.cancel()


def read_stdin(advice: str) -> bytes:
    """Standard input's bytes (a text given as -), up to MAX_TEXT_BYTES (read_capped); UserError when it is
    closed (`<&-`)."""
    import sys
    if sys.stdin is None:
        raise UserError("standard input is closed; give the text as a file, or pipe it in")
    return read_capped(sys.stdin.buffer, MAX_TEXT_BYTES, "standard input", advice)


def read_capped(f, limit: int, name, advice: str) -> bytes:
    """At most `limit` bytes of the open binary file `f` (a file, standard input), else UserError "NAME is
    larger than N MiB ...; <advice>": a regular file by its size, before anything is read; anything else
    after reading limit + 1 bytes."""
    try:
        st = os.fstat(f.fileno())
        regular, size = stat.S_ISREG(st.st_mode), st.st_size
    except (OSError, ValueError):       # no file descriptor (a stream in memory): read as a pipe is
        regular, size = False, 0
    raw = f.read(limit + 1) if not regular or size <= limit else b""
    if (regular and size > limit) or len(raw) > limit:
        endless = "" if regular else " (or never ends: a device such as /dev/zero, or a pipe)"
        amount = f"{limit >> 20:,} MiB" if limit >= 1 << 20 else f"{limit:,} {plural(limit, 'byte')}"
        raise UserError(f"{name} is larger than {amount}{endless}; {advice}")
    return raw


def read_text(path: Path, corpus: bool = True) -> str:
    """Read one corpus file (corpus=False: a text given to a command, evaluate --text) as text with
    '\\n' line ends.

    UTF-8 with or without BOM; UTF-16 or UTF-32 with its BOM (Windows'
    "Unicode") with a warning; a file that is not UTF-8 is decoded as cp1252
    (latin-1 if even that fails) with a warning naming the file. Binary files
    (NUL bytes, or more than MAX_CONTROL_SHARE control characters, and MIN_CONTROL at least, once
    decoded: any bytes decode as latin-1) and empty files raise UserError, whose advice fits what the file is.
    A text given to a command is read up to MAX_TEXT_BYTES (a UserError beyond it: a device that never ends
    is refused, not read into memory); a corpus file is a regular file (`resolve` refuses anything else).
    """
    path = Path(path)
    limit = None if corpus else MAX_TEXT_BYTES
    raw = read_bytes(path, limit, advice="give a smaller text, or split it into several files")
    return decode_text(raw, path, corpus)


def decode_text(raw: bytes, path, corpus: bool = False) -> str:
    """read_text's decoding of bytes already read (standard input's: score --file -); `path` names them in
    its warnings and errors ("standard input")."""
    advice = "a corpus must be plain text files" if corpus else "give a plain text file"
    wide = _wide_encoding(raw)
    if wide is not None:        # UTF-16/32 (Windows Notepad's "Unicode"): NUL bytes, but text
        try:
            raw = raw.decode(wide).encode("utf-8")
        except UnicodeDecodeError:
            raise UserError(f"{path} starts with a {wide.upper()} byte-order mark but is not {wide.upper()}; "
                            f"{advice} (UTF-8)") from None
        warnings.warn(f"{path} is {wide.upper()}, not UTF-8; read it as {wide.upper()}", stacklevel=2)
    if b"\x00" in raw:
        sixteen = _utf16_without_bom(raw)
        if sixteen:
            raise UserError(f"{path} looks like {sixteen.upper()} text without a byte-order mark (every other byte "
                            f"is NUL); {advice} in UTF-8: convert it (iconv -f {sixteen} -t utf-8)")
        raise UserError(f"{path} looks binary (it contains NUL bytes); {advice}")
    encoding = "utf-8"
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        mostly = _mostly_utf8(raw)
        if mostly is not None:      # UTF-8 but for a few bytes (a file cut mid-character, one pasted byte)
            text, bad = mostly
            where = f"at byte {exc.start:,}" if bad == 1 else f"at {bad:,} places, the first at byte {exc.start:,}"
            encoding = (f"UTF-8 except {where}; read it as UTF-8 with "
                        f"{'that byte' if bad == 1 else 'those'} replaced by U+FFFD")
        else:
            try:
                text, encoding = raw.decode("cp1252"), "cp1252"
            except UnicodeDecodeError:
                text, encoding = raw.decode("latin-1"), "latin-1"
    control = len(_CONTROL.findall(text))
    if control >= MIN_CONTROL and control > MAX_CONTROL_SHARE * len(text):
        read_as = "" if encoding == "utf-8" else f", read as {encoding},"
        raise UserError(f"{path} looks binary ({100 * control / len(text):.0f}% of its characters{read_as} are "
                        f"control codes); {advice}")
    if encoding.startswith("UTF-8 except"):
        warnings.warn(f"{path} is {encoding}", stacklevel=2)
    elif encoding != "utf-8":
        warnings.warn(f"{path} is not UTF-8; read it as {encoding}", stacklevel=2)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise UserError(f"{path} is empty; " + ("remove it from the corpus or give it some text" if corpus
                                                 else "give a file with some text"))
    return text


# ---------------------------------------------------------------- checksums


def sha256_file(path: Path) -> str:
    """SHA-256 of a file's bytes (hex); UserError "cannot read PATH: <reason>" when it cannot be read (a
    corpus file without read permission: the OSError's own advice would be about writing)."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}; make it readable, or move it out of the "
                        "corpus folder") from None
    return digest.hexdigest()


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, data)


def file_hashes(files: list[Path], cache_dir: Path | None = None) -> list[str]:
    """SHA-256 of each file's bytes, hashed every time (see the module docstring).

    cache_dir: unused, kept for callers of the version that remembered hashes by mtime.
    """
    return [sha256_file(path) for path in files]


def source_checksum(source: CorpusSource, cache_dir: Path | None = None) -> str:
    """SHA-256 over (relative name, file SHA-256) of every file; verifies catalog hashes."""
    hashes = file_hashes([p for _, p in source.files])
    if source.catalog is not None:
        expected = {e.path: e.sha256 for e in source.catalog.entries}
        for (name, path), digest in zip(source.files, hashes):
            if expected.get(name) != digest:
                raise UserError(f"{path} does not match the '{source.name}' catalog checksum "
                                f"(the file was changed or is corrupt); download it again")
    digest = hashlib.sha256()
    for (name, _), file_digest in zip(source.files, hashes):
        digest.update(f"{name}\t{file_digest}\n".encode())
    return digest.hexdigest()


# ---------------------------------------------------------------- download


def present(name: str, corpora_dir=None) -> CorpusSource | None:
    """The catalog corpus `name` where the lookup finds it (find_named) with every file's SHA-256
    matching the catalog, or None (not found, or a file changed: a download is then due). No network."""
    try:
        source = find_named(name, corpora_dir)
        source_checksum(source)
    except UserError:
        return None
    return source


def download(name: str, corpora_dir=None, progress: bool | None = None, force: bool = False) -> Path:
    """Fetch every file of a catalog corpus into download_dir(name, corpora_dir).

    Files already there with the right SHA-256 are kept unless `force`. Each
    file is written to a temporary name, its SHA-256 checked, then renamed; a
    mismatch deletes it and raises UserError. Without network, raises one
    UserError line saying where to put the files by hand. Returns the folder.
    (The `corpus download` command first asks `present` and fetches nothing
    when the lookup already finds the corpus, unless --force.)
    """
    if name == "sintetico":
        return ensure_sintetico(corpora_dir)
    if name not in NAMED_CORPORA:
        raise UserError(f"'{name}' is not a named corpus; downloadable: machado")
    from tqdm import tqdm

    catalog = load_catalog(name)
    target = download_dir(name, corpora_dir)
    todo = []
    for entry in catalog.entries:
        dest = target / entry.path
        if (not force and dest.is_file() and dest.stat().st_size == entry.size
                and sha256_file(dest) == entry.sha256):
            continue
        todo.append(entry)
    bar = tqdm(total=sum(e.size for e in todo), unit="B", unit_scale=True,
               desc=f"download {name}", file=sys.stderr,
               disable=None if progress is None else not progress)   # None: only on a terminal
    try:
        for entry in todo:
            _fetch_one(catalog, entry, target, bar, corpora_dir)
    finally:
        bar.close()
    return target


def _fetch_one(catalog: Catalog, entry: CatalogEntry, target: Path, bar, corpora_dir) -> None:
    dest = target / entry.path
    dest.parent.mkdir(parents=True, exist_ok=True)
    url = catalog.url(entry)

    def download(out):
        digest = hashlib.sha256()
        try:
            with _urlopen(url, _DOWNLOAD_TIMEOUT_S) as response:
                for chunk in iter(lambda: response.read(_CHUNK), b""):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise UserError(
                f"cannot download {url} ({reason}); without network, copy the "
                f"{len(catalog.entries)} {plural(len(catalog.entries), 'file')} listed in "
                f"{catalog.home / 'MANIFEST.tsv'} to {target}/<path>"
                + ("" if given_corpora_dir(corpora_dir) else
                   f", or point --corpora-dir or $RNNLM_CORPORA at a folder holding {catalog.name}/")
            ) from None
        if digest.hexdigest() != entry.sha256:   # raised inside the write: nothing is kept
            raise UserError(f"checksum mismatch for {url}: got sha256 {digest.hexdigest()[:12]}..., "
                            f"the catalog says {entry.sha256[:12]}...; nothing was kept, try again later")

    try:
        atomic_write(dest, download, suffix=".part")
    except BaseException:
        _remove_empty_parents(dest.parent, stop=target.parent)
        raise


def _remove_empty_parents(folder: Path, stop: Path) -> None:
    """Remove folders a failed download left empty, up to (not including) `stop`."""
    while folder != stop and stop in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent
