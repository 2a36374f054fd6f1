"""Version-pinned parameter docs of the installed training libraries, written as documents to index.

A question about `lora_alpha` or `per_device_train_batch_size` deserves an answer that says which
release it holds for. So the parameter docs come from the packages installed here, not from a copy
that ages: for each config class (transformers `TrainingArguments`, peft `LoraConfig` and the other
common PEFT configs, trl `SFTConfig` and the preference configs) every dataclass field gives one
passage with its type, its default and its help text (`field.metadata["help"]`, plus the class
docstring's description of the parameter where that says more).

The passages are written as one Markdown file per class under the workspace
(`index/library-docs/library/<package>==<version>/<Class>.md`, each parameter a level-1 heading such
as "peft 0.21.2 LoraConfig.lora_alpha"), so the ordinary ingest indexes and cites them like any
document: `source` is `library/peft==0.21.2/LoraConfig.md`, `heading` names package, version, class
and parameter. The folder carries a stamp of the versions it was written for; when an installed
version changes, the folder is rebuilt (in a staging folder, swapped in by renames) and the next
ingest of its root replaces exactly the library passages: new files are added before the old
version's are removed, and the shipped corpus is not touched.

Extraction imports the libraries (transformers, peft and trl take seconds to import), which happens
only when the stamp does not match, and at most once per process for a given set of versions.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import importlib.metadata
import inspect
import json
import re
import textwrap
import uuid
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from tunepilot.core import atomic

# Bump when the passages' wording or layout changes: every library folder is then rewritten once.
FORMAT = "2"
ROOT_ID = "tunepilot:libraries"  # the ingest root id of the library docs, the same on every machine
SUBFOLDER = "library"  # sources read "library/<package>==<version>/<Class>.md"
STAMP = ".versions.json"  # hidden: the ingest's folder walk skips it


@dataclass(frozen=True)
class ConfigClass:
    package: str  # distribution name, for importlib.metadata
    name: str
    modules: tuple[str, ...]  # where the class is imported from; the first that has it wins (classes move between releases)


# The configs people set when they fine-tune; the PEFT list follows the methods the shipped docs
# discuss (PeftConfig holds the fields every PEFT config shares, such as task_type).
CLASSES: tuple[ConfigClass, ...] = (
    ConfigClass("transformers", "TrainingArguments", ("transformers",)),
    ConfigClass("peft", "PeftConfig", ("peft",)),
    *(ConfigClass("peft", name, ("peft",)) for name in (
        "LoraConfig", "AdaLoraConfig", "IA3Config", "LoHaConfig", "LoKrConfig", "OFTConfig", "BOFTConfig",
        "VeraConfig", "PromptTuningConfig", "PrefixTuningConfig", "PromptEncoderConfig",
    )),
    ConfigClass("trl", "SFTConfig", ("trl",)),
    ConfigClass("trl", "DPOConfig", ("trl",)),
    ConfigClass("trl", "KTOConfig", ("trl", "trl.experimental.kto")),
    ConfigClass("trl", "ORPOConfig", ("trl", "trl.experimental.orpo")),
)
PACKAGES: tuple[str, ...] = tuple(dict.fromkeys(c.package for c in CLASSES))


@dataclass
class Parameter:
    name: str
    type: str
    default: str | None  # Python literal as text; None = required (no default)
    description: str
    same_in: list[str] = field(default_factory=list)  # other classes whose field is documented identically


@dataclass
class LibraryDocs:
    """The current library folder and what could not be documented (package missing, class gone)."""

    folder: Path
    versions: dict[str, str | None]
    skipped: list[dict] = field(default_factory=list)  # {"path", "reason"}, as in an ingest summary
    rebuilt: bool = False


# --------------------------------------------------------------------------- versions


@lru_cache(maxsize=1)
def _lookup_versions() -> tuple[tuple[str, str | None], ...]:
    found = []
    for package in PACKAGES:
        try:
            found.append((package, importlib.metadata.version(package)))
        except importlib.metadata.PackageNotFoundError:
            found.append((package, None))
    return tuple(found)


def installed_versions() -> dict[str, str | None]:
    """package -> installed version (None when not installed). Looked up once per process: a
    running process keeps the modules it imported, so a newer install counts from the next start."""
    return dict(_lookup_versions())


# --------------------------------------------------------------------------- extraction


_PARAM_LINE = re.compile(r"^(?P<indent>[ \t]*)(?P<name>[A-Za-z_]\w*) \((?P<sig>.*)\):[ \t]*(?P<rest>.*)$")


def docstring_params(doc: str | None) -> dict[str, str]:
    """name -> description from a Google/HF style "Args:" docstring:

        lora_alpha (`int`):
            The alpha parameter for Lora scaling.

    The description is every following line indented deeper than the name line."""
    if not doc:
        return {}
    lines = inspect.cleandoc(doc).splitlines()
    found: dict[str, str] = {}
    i = 0
    while i < len(lines):
        m = _PARAM_LINE.match(lines[i])
        # A prose line such as "Note (see below): ..." is not a parameter; HF docstrings put the
        # type in backticks, so a same-line description is only taken after a backticked type.
        if not m or (m["rest"] and "`" not in m["sig"]):
            i += 1
            continue
        indent = len(m["indent"].expandtabs())
        body = [m["rest"]] if m["rest"] else []
        j = i + 1
        while j < len(lines) and (not lines[j].strip() or len(lines[j].expandtabs()) - len(lines[j].expandtabs().lstrip()) > indent):
            body.append(lines[j])
            j += 1
        text = textwrap.dedent("\n".join(body)).strip()
        if text:
            found.setdefault(m["name"], text)
        i = j
    return found


def _type_text(annotation) -> str:
    if isinstance(annotation, str):
        text = annotation
    elif isinstance(annotation, type):
        text = annotation.__name__
    else:
        text = str(annotation)
    text = text.replace("typing.", "")
    return re.sub(r"\b(?:[A-Za-z_]\w*\.)+([A-Za-z_]\w*)", r"\1", text)  # module paths add nothing


def _default_text(f: dataclasses.Field) -> str | None:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        try:
            value = f.default_factory()
        except Exception:  # a factory that needs runtime state; say so instead of guessing
            return f"computed when the object is created ({getattr(f.default_factory, '__name__', 'factory')})"
    else:
        return None
    if isinstance(value, enum.Enum):
        value = value.value
    text = repr(value)
    return text if len(text) <= 300 else text[:300] + " …"


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def _description(help_text: str, doc_text: str) -> str:
    """The docstring's description, and the field help only where it adds words of its own (the
    two are often the same sentence, or the help a terse form of the docstring)."""
    help_text, doc_text = (help_text or "").strip(), (doc_text or "").strip()
    if not doc_text or not help_text:
        return doc_text or help_text
    helps, docs = _words(help_text), _words(doc_text)
    if len(helps & docs) >= 0.6 * len(helps):
        return doc_text
    if len(helps & docs) >= 0.6 * len(docs):
        return help_text
    return f"{doc_text}\n\n{help_text}"


def class_parameters(cls, indexed: tuple[type, ...] = ()) -> list[Parameter]:
    """The documented fields of dataclass `cls`. A field inherited unchanged (same default, same
    help) from one of the `indexed` classes is documented there and not repeated here."""
    docs: dict[str, str] = {}
    for klass in cls.__mro__:  # the class's own docstring first, then its ancestors'
        for name, text in docstring_params(klass.__dict__.get("__doc__")).items():
            docs.setdefault(name, text)
    inherited: dict[str, dataclasses.Field] = {}
    for parent in cls.__mro__[1:]:
        if parent in indexed and dataclasses.is_dataclass(parent):
            for f in dataclasses.fields(parent):
                inherited.setdefault(f.name, f)
    params = []
    for f in dataclasses.fields(cls):
        if f.name.startswith("_"):
            continue
        base = inherited.get(f.name)
        if base is not None and _same_field(f, base):
            continue
        params.append(Parameter(f.name, _type_text(f.type), _default_text(f),
                                _description(str(f.metadata.get("help") or ""), docs.get(f.name, ""))))
    return params


def _same_field(a: dataclasses.Field, b: dataclasses.Field) -> bool:
    return _default_text(a) == _default_text(b) and a.metadata.get("help") == b.metadata.get("help")


def _import_class(spec: ConfigClass):
    """The class, or a reason why not (module missing, class moved or gone in this release)."""
    problems = []
    for module_name in spec.modules:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # trl's experimental modules warn on import
                module = importlib.import_module(module_name)
            cls = getattr(module, spec.name)
        except Exception as exc:  # an ImportError, or a library that fails to import here
            problems.append(f"{module_name}: {type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}")
            continue
        if dataclasses.is_dataclass(cls):
            return cls, None
        problems.append(f"{module_name}.{spec.name} is not a dataclass")
    return None, "; ".join(problems)


# --------------------------------------------------------------------------- rendering


def heading(package: str, version: str, cls_name: str, param: str | None = None) -> str:
    """"peft 0.21.2 LoraConfig.lora_alpha": what a citation of the passage shows."""
    return f"{package} {version} {cls_name}" + (f".{param}" if param else "")


def source_path(package: str, version: str, cls_name: str) -> str:
    return f"{SUBFOLDER}/{package}=={version}/{cls_name}.md"


def is_library_source(source: str) -> bool:
    """Whether a hit's `source` is one of these parameter passages (for ranking or display choices)."""
    parts = source.split("/")
    return len(parts) == 3 and parts[0] == SUBFOLDER and "==" in parts[1]


def _markdown_safe(text: str) -> str:
    # A line starting with "#" would become a heading of its own and split the passage.
    return "\n".join("\\" + line if line.lstrip().startswith("#") else line for line in text.splitlines())


def render_class(package: str, version: str, cls_name: str, module: str, params: list[Parameter]) -> str:
    """One Markdown document: front matter, the class title, then one level-1 section per parameter."""
    title = heading(package, version, cls_name)
    front = {"title": title, "lang": "en", "tags": ["library", package, f"{package}=={version}", cls_name],
             "sources": [f"installed package {package} {version} ({module}.{cls_name})"]}
    parts = ["---\n" + "\n".join(f"{k}: {json.dumps(v, ensure_ascii=False)}" for k, v in front.items()) + "\n---\n",
             f"# {title}\n"]
    for p in params:
        default = f"defaults to `{p.default}`" if p.default is not None else "has no default (it must be given)"
        # The name stands alone (not only as "Class.name") so a question that writes it matches it.
        lead = f"In {package} {version}, the `{p.name}` parameter of `{cls_name}` (type `{p.type}`) {default}."
        body = _markdown_safe(p.description) if p.description else "The installed package gives no description."
        if p.same_in:
            lead += f" The same holds for `{p.name}` of {', '.join(f'`{c}`' for c in p.same_in)} in {package} {version}."
        parts.append(f"# {heading(package, version, cls_name, p.name)}\n\n{lead}\n\n{body}\n")
    return "\n".join(parts)


@lru_cache(maxsize=4)
def _documents(versions: tuple[tuple[str, str | None], ...]) -> tuple[dict[str, str], tuple[tuple[str, str], ...]]:
    """relative path -> Markdown for every class, and (path, reason) for what was skipped.
    Cached per set of versions: importing the libraries is the slow part."""
    known = dict(versions)
    docs: dict[str, str] = {}
    skipped: list[tuple[str, str]] = []
    loaded: list[tuple[ConfigClass, type]] = []
    for spec in CLASSES:
        version = known.get(spec.package)
        label = f"{SUBFOLDER}/{spec.package}/{spec.name}"
        if version is None:
            skipped.append((label, f"{spec.package} is not installed"))
            continue
        cls, problem = _import_class(spec)
        if cls is None:
            skipped.append((label, f"{spec.name} not found in {spec.package} {version} ({problem})"))
            continue
        loaded.append((spec, cls))
    indexed = tuple(cls for _, cls in loaded)
    # Sibling configs (trl's SFT/DPO/KTO/ORPO) inherit the same overrides from a common private base:
    # one passage per distinct parameter doc, naming the other classes, keeps them from crowding
    # the search results with four copies.
    first: dict[tuple, Parameter] = {}
    per_class: list[tuple[ConfigClass, type, list[Parameter]]] = []
    for spec, cls in loaded:
        kept = []
        for p in class_parameters(cls, indexed):
            key = (spec.package, p.name, p.type, p.default, p.description)
            if key in first:
                first[key].same_in.append(spec.name)
            else:
                first[key] = p
                kept.append(p)
        per_class.append((spec, cls, kept))
    for spec, cls, params in per_class:
        version = known[spec.package]
        if params:
            docs[source_path(spec.package, version, spec.name)] = render_class(
                spec.package, version, spec.name, cls.__module__, params)
    return docs, tuple(skipped)


# --------------------------------------------------------------------------- the folder


def library_folder() -> Path:
    from tunepilot.core.workspace import index_dir

    return index_dir() / "library-docs"


def _stamp(versions: dict[str, str | None]) -> dict:
    return {"format": FORMAT, "versions": versions}


def _read_stamp(folder: Path) -> dict | None:
    try:
        return json.loads((folder / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def ensure_current() -> LibraryDocs:
    """The library folder, rebuilt first when it was written for other versions (or another FORMAT).

    Rebuilding writes a complete staging folder and swaps it in with renames (`atomic.replace_dir`)
    under a file lock, so a reader sees the old complete folder or the new one."""
    from filelock import FileLock

    folder = library_folder()
    versions = installed_versions()
    stamp = _read_stamp(folder)
    if stamp is not None and {k: stamp.get(k) for k in ("format", "versions")} == _stamp(versions):
        return LibraryDocs(folder, versions, [dict(s) for s in stamp.get("skipped", [])])
    with FileLock(str(folder.with_name(folder.name + ".lock"))):
        stamp = _read_stamp(folder)  # another process may have rebuilt it while we waited
        if stamp is not None and {k: stamp.get(k) for k in ("format", "versions")} == _stamp(versions):
            return LibraryDocs(folder, versions, [dict(s) for s in stamp.get("skipped", [])])
        docs, skipped = _documents(tuple(sorted(versions.items())))
        staging = folder.with_name(f".{folder.name}-{uuid.uuid4().hex[:8]}")
        staging.mkdir(parents=True)
        for rel, text in docs.items():
            path = staging / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        notes = [{"path": path, "reason": reason} for path, reason in skipped]
        atomic.write_json(staging / STAMP, {**_stamp(versions), "skipped": notes})
        atomic.replace_dir(staging, folder)
    return LibraryDocs(folder, versions, notes, rebuilt=True)
