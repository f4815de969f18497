"""A Dockerfile reader for the deployment tests: stages, instructions, ARG defaults.

No Docker engine exists where the tests run, so the images cannot be built here; these
tests read the files the way BuildKit does (line continuations, comments, parser
directives, exec-form JSON, ``ARG`` substitution in ``FROM``) and check invariants on the
result. Only the syntax the project's Dockerfiles use is supported; anything else raises
``ValueError`` naming the line, so a new construct cannot slip past the checks unread.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

INSTRUCTIONS = {
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL",
    "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
}  # fmt: skip
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True)
class Instruction:
    """One instruction: keyword (upper case), its argument text, and the line it starts on."""

    keyword: str
    text: str
    line: int

    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form instruction, or None for the shell form."""
        body = self.text
        if self.keyword == "HEALTHCHECK":
            _, _, body = body.partition("CMD")
        body = body.strip()
        if not body.startswith("["):
            return None
        value = json.loads(body)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"line {self.line}: exec form must be a JSON array of strings")
        return value

    def flags(self) -> dict[str, str]:
        """``--name=value`` options at the start (``COPY --from=build``, ``HEALTHCHECK --interval=``)."""
        found: dict[str, str] = {}
        for word in shlex.split(self.text):
            if not word.startswith("--"):
                break
            name, _, value = word[2:].partition("=")
            found[name] = value
        return found

    def operands(self) -> list[str]:
        """The shell-split words after the leading ``--`` options."""
        words = shlex.split(self.text)
        while words and words[0].startswith("--"):
            words.pop(0)
        return words

    def assignments(self) -> dict[str, str]:
        """``ENV``/``ARG``/``LABEL`` pairs: ``K=V`` words, or the legacy ``ENV K V`` form."""
        words = shlex.split(self.text)
        if self.keyword == "ENV" and words and "=" not in words[0]:
            return {words[0]: " ".join(words[1:])}
        pairs: dict[str, str] = {}
        for word in words:
            name, eq, value = word.partition("=")
            pairs[name] = value if eq else ""
        return pairs


@dataclass
class Stage:
    """One ``FROM`` block: its base as written and resolved, its name, its instructions."""

    base: str
    resolved_base: str
    name: str
    index: int
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for instruction in self.all("ENV"):
            values.update(instruction.assignments())
        return values

    def args(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for instruction in self.all("ARG"):
            values.update(instruction.assignments())
        return values

    def run_text(self) -> str:
        return "\n".join(i.text for i in self.all("RUN"))


@dataclass
class Dockerfile:
    """A parsed Dockerfile: global ``ARG`` defaults (before the first ``FROM``) and stages."""

    path: Path
    global_args: dict[str, str]
    stages: list[Stage]
    comments: list[str]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(f"{self.path.name} has no stage {name!r}")

    def stage_names(self) -> set[str]:
        return {s.name for s in self.stages}

    def choices(self, stage: Stage) -> list[Stage]:
        """The stages a ``FROM`` may resolve to: ``model-${MODEL_SOURCE}`` matches every ``model-*``."""
        earlier = [s for s in self.stages if s.index < stage.index]
        literal = _VAR.sub("", stage.base)
        if literal == stage.base or not literal:
            # No variable, or nothing but one (an image such as ${BASE_IMAGE}): its value decides.
            return [s for s in earlier if s.name == stage.resolved_base]
        pieces, pos = [], 0
        for match in _VAR.finditer(stage.base):
            pieces += [re.escape(stage.base[pos : match.start()]), "[A-Za-z0-9_.-]+"]
            pos = match.end()
        pattern = re.compile("^" + "".join(pieces) + re.escape(stage.base[pos:]) + "$")
        return [s for s in earlier if pattern.match(s.name)]

    def external_bases(self) -> list[tuple[Stage, str]]:
        """Stages built on an image (not on another stage), with the image after substitution."""
        return [(s, s.resolved_base) for s in self.stages if not self.choices(s)]


def substitute(text: str, values: dict[str, str]) -> str:
    """Expand ``$NAME`` and ``${NAME}`` from ``values``; unknown names are left as written."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return values.get(name, match.group(0))

    return _VAR.sub(one, text)


def _logical_lines(source: str) -> list[tuple[int, str]]:
    """Join continuation lines; drop comments and blank lines (comments inside a continuation too)."""
    lines: list[tuple[int, str]] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(source.splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].rstrip())
            continue
        pending.append(stripped)
        lines.append((start, " ".join(p for p in pending if p)))
        pending = []
    if pending:
        raise ValueError(f"line {start}: the file ends inside a line continuation")
    return lines


def parse(path: Path) -> Dockerfile:
    """Read ``path`` into stages; raise ``ValueError`` on an unknown instruction or a bad ``FROM``."""
    source = path.read_text()
    comments = [line.strip()[1:].strip() for line in source.splitlines() if line.strip().startswith("#")]
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for number, line in _logical_lines(source):
        keyword, _, text = line.partition(" ")
        keyword = keyword.upper()
        if keyword not in INSTRUCTIONS:
            raise ValueError(f"{path.name} line {number}: unknown instruction {keyword!r}")
        instruction = Instruction(keyword, text.strip(), number)
        if keyword == "FROM":
            words = text.split()
            if len(words) == 3 and words[1].upper() == "AS":
                base, name = words[0], words[2]
            elif len(words) == 1:
                base, name = words[0], str(len(stages))
            else:
                raise ValueError(f"{path.name} line {number}: expected `FROM image [AS name]`")
            stages.append(Stage(base, substitute(base, global_args), name, len(stages)))
        elif not stages:
            if keyword != "ARG":
                raise ValueError(f"{path.name} line {number}: only ARG may come before the first FROM")
            global_args.update(instruction.assignments())
        else:
            stages[-1].instructions.append(instruction)
    if not stages:
        raise ValueError(f"{path.name} has no FROM")
    return Dockerfile(path, global_args, stages, comments)
