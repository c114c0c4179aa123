"""scripts/bootstrap, as `make run`, `make test` and .ci/run use it, on a PATH that lacks what a bare
machine lacks: a fake apt-get records what it is asked and "installs" by dropping commands on PATH."""

import shutil
import subprocess
import sys

import pytest

from tests.support import ROOT

FAKE_APT = """#!/bin/sh
echo "$*" >> "$APT_LOG"
if [ "$1" = install ]; then
  for package in "$@"; do
    case "$package" in -*) ;; *) printf '#!/bin/sh\\n' > "$FAKE_BIN/$package"; chmod +x "$FAKE_BIN/$package" ;; esac
  done
fi
"""


@pytest.fixture
def machine(tmp_path):
    """A PATH with bash, make and the basics, python3, and whatever a test adds; nothing else."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "env", "id", "cut", "chmod", "make", "sh"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    (bin_dir / "python3").symlink_to(sys.executable)

    class Machine:
        apt_log = tmp_path / "apt.log"

        def add(self, *names, script="#!/bin/sh\n"):
            for name in names:
                (bin_dir / name).write_text(script)
                (bin_dir / name).chmod(0o755)

        def run(self, *command, uid=0, cwd=ROOT):
            env = {"PATH": str(bin_dir), "APT_LOG": str(self.apt_log), "FAKE_BIN": str(bin_dir)}
            env["BOOTSTRAP_UID"] = str(uid)
            return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=30)

        def apt_calls(self):
            return self.apt_log.read_text().splitlines() if self.apt_log.exists() else []

    return Machine()


def test_as_root_it_installs_redis_and_chromium_with_apt_get(machine):
    machine.add("node", "npm")
    machine.add("apt-get", script=FAKE_APT)
    result = machine.run("scripts/bootstrap", "test")
    assert result.returncode == 0, result.stderr
    assert machine.apt_calls() == ["update -qq", "install -y -qq redis-server chromium openssl"]
    assert "installing redis-server chromium openssl" in result.stdout
    again = machine.run("scripts/bootstrap", "test")
    assert again.returncode == 0 and len(machine.apt_calls()) == 2, "nothing more once installed"


def test_as_a_user_it_stops_at_once_with_the_command_to_run(machine):
    machine.add("node", "npm", "redis-server", "openssl")
    machine.add("apt-get", script=FAKE_APT)
    result = machine.run("scripts/bootstrap", "test", uid=1000)
    assert result.returncode == 1 and machine.apt_calls() == []
    assert "sudo apt-get update && sudo apt-get install -y chromium" in result.stderr


def test_make_run_needs_no_debian_package_and_make_test_asks_for_them(machine, tmp_path):
    project = tmp_path / "clone"
    (project / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "Makefile", project)
    shutil.copy(ROOT / "scripts" / "bootstrap", project / "scripts")
    machine.add("node", "npm")
    machine.add("apt-get", script=FAKE_APT)
    assert machine.run("make", "bootstrap-run", uid=1000, cwd=project).returncode == 0
    result = machine.run("make", "bootstrap-test", uid=1000, cwd=project)
    assert result.returncode != 0 and "sudo apt-get install -y redis-server chromium openssl" in result.stderr
    plan = subprocess.run(["make", "-n", "run", "test"], cwd=ROOT, capture_output=True, text=True).stdout
    assert "scripts/bootstrap run" in plan and "scripts/bootstrap test" in plan
    assert "scripts/bootstrap test" in (ROOT / ".ci" / "run").read_text()


def test_missing_tools_it_does_not_install_are_named(machine):
    machine.add("apt-get", script=FAKE_APT)
    result = machine.run("scripts/bootstrap", "test")
    assert result.returncode == 1 and "node is needed" in result.stderr and "nodejs npm" in result.stderr


def test_without_apt_get_the_packages_are_named(machine):
    machine.add("node", "npm")
    result = machine.run("scripts/bootstrap", "test")
    assert result.returncode == 1 and "missing: redis-server chromium openssl" in result.stderr


def test_python3_must_be_3_11_or_newer(machine, tmp_path):
    old = "#!/bin/sh\n[ \"$1\" = -V ] && echo 'Python 3.9.2' && exit 0\nexit 1\n"
    (tmp_path / "bin" / "python3").unlink()
    machine.add("python3", script=old)
    result = machine.run("scripts/bootstrap", "run")
    assert result.returncode == 1 and "python3 is 3.9.2; 3.11 or newer is needed" in result.stderr


def test_node_must_be_18_or_newer(machine):
    machine.add("npm")
    machine.add("node", script='#!/bin/sh\n[ "$1" = --version ] && echo v16.20.2 && exit 0\nexit 1\n')
    result = machine.run("scripts/bootstrap", "test")
    assert result.returncode == 1 and "node is v16.20.2; the browser-client tests need Node.js 18" in result.stderr
