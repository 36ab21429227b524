"""virsh's argument forms: every verb's synopsis and options as virsh 9 has them, each
value option by name or in its place, in any order; pools by name or UUID, volumes by
name, key or path. virsh itself (libvirt-clients) is the reference where it can be."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from cli.commands import GROUPS, all_verbs

MiB = 1 << 20


def virsh_help(*words: str) -> str:
    return subprocess.run(["virsh", "help", *words], capture_output=True, text=True,
                          check=True).stdout


def _section(page: str, title: str) -> list[str]:
    lines = page.splitlines()
    start = lines.index(f"  {title}") + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("  ")
                and not lines[i].startswith("    ")), len(lines))
    return [line for line in lines[start:end] if line.strip()]


@pytest.mark.parametrize("keyword", ["pool", "volume"])
def test_every_virsh_storage_verb_is_here(keyword):
    listed = re.findall(r"^    (\S+)\s", virsh_help(keyword), re.M)
    ours = next(verbs for _t, k, verbs in GROUPS if k == keyword)
    assert [v.name for v in ours] == listed


@pytest.mark.parametrize("verb", [v.name for _t, k, vs in GROUPS if k != "secret" for v in vs])
def test_help_shows_virshs_synopsis_and_options(cli, verb):
    """Ours is virsh's page; options poolkeeper adds come after virsh's."""
    ours, theirs = cli(verb, "--help").out, virsh_help(verb)
    assert _section(ours, "NAME") == _section(theirs, "NAME")
    [our_synopsis], [their_synopsis] = _section(ours, "SYNOPSIS"), _section(theirs, "SYNOPSIS")
    if verb == "pool-create":  # virsh 9 lacks pool-create --validate (later ones have it)
        their_synopsis += " [--validate]"
    assert our_synopsis.startswith(their_synopsis), (our_synopsis, their_synopsis)
    if "OPTIONS" in theirs:
        their_options = _section(theirs, "OPTIONS")
        assert _section(ours, "OPTIONS")[:len(their_options)] == their_options


def test_usage_hints_name_the_right_help(cli):
    r = cli("--bogus", "pool-list")
    assert r.code == 1 and r.err.endswith("(see `poolkeeper --help`)\n"), r
    r = cli("pool-info", "--pol", "x")
    assert r.err == ("error: command 'pool-info' doesn't support option --pol "
                     "(see `poolkeeper pool-info --help`)\n"), r
    r = cli("no-such-verb")
    assert r.code == 1 and "`poolkeeper --help`" in r.err and "poolkeeper poolkeeper" not in r.err


def test_virsh_parse_errors(cli):
    assert "requires <pool> option" in cli("pool-info").err
    assert "unexpected data 'b'" in cli("pool-info", "a", "b").err
    assert "option --pool already seen" in cli("pool-info", "--pool", "a", "--pool", "b").err
    assert "expected syntax: --pool <string>" in cli("pool-dumpxml", "--pool").err
    assert "option --details already seen" in cli("vol-list", "x", "--details",
                                                   "--details").err
    assert "mutually exclusive" in cli("pool-list", "--details", "--uuid").err


@pytest.fixture
def vms(cli, tmp_path):
    target = tmp_path / "vms"
    assert cli("pool-define-as", "vms", "dir", "--target", str(target)).code == 0
    assert cli("pool-start", "vms", "--build").code == 0
    return target


@pytest.mark.parametrize("args", [
    ("vms", "a.img", "1M"),
    ("--pool", "vms", "--name", "a.img", "--capacity", "1M"),
    ("--capacity", "1M", "--name", "a.img", "vms"),  # named first, the rest in place
    ("vms", "--capacity=1M", "a.img"),
    ("--pool", "vms", "a.img", "1M"),  # --pool taken: words fill name, then capacity
    ("vms", "a.img", "1M", "512K"),  # the fourth word is --allocation (virsh 9)
])
def test_vol_create_as_positional_or_named_in_any_order(cli, vms, args):
    r = cli("vol-create-as", *args)
    assert r.code == 0 and r.out == "Vol a.img created\n", r
    st = os.stat(vms / "a.img")
    assert st.st_size == MiB
    if args[-1] == "512K":
        assert st.st_blocks * 512 < MiB  # allocation 512K: not all of it
    r = cli("vol-info", "--vol", "a.img", "vms", "--bytes")  # --pool in its place
    assert f"Capacity:       {MiB} bytes" in r.out, r


def test_pools_by_uuid_and_volumes_by_key_or_path(cli, vms):
    uuid = cli("pool-uuid", "vms").out.strip()
    assert re.fullmatch(r"[0-9a-f-]{36}", uuid)
    assert cli("pool-name", uuid).out == "vms\n"
    assert cli("pool-name", "--pool", uuid.replace("-", "").upper()).out == "vms\n"
    assert "Name:           vms" in cli("pool-info", uuid).out
    assert cli("vol-create-as", uuid, "d.img", "1M").code == 0
    path = str(vms / "d.img")
    # name in a pool given by UUID, key (a dir volume's key is its path), path
    for args in (("d.img", "--pool", uuid), (path,), ("--vol", path, "--pool", "vms")):
        assert cli("vol-path", *args).out == path + "\n", args
    assert cli("vol-key", "d.img", "vms").out == path + "\n"
    assert cli("vol-name", path).out == "d.img\n"
    assert cli("vol-pool", path).out == "vms\n"
    assert cli("vol-pool", "--uuid", path).out == uuid + "\n"
    r = cli("vol-info", "d.img")  # a name alone names no volume: virsh's advice
    assert r.code == 1 and "--pool POOL" in r.err, r
    r = cli("vol-name", str(vms / "nothing"))
    assert r.code == 1 and "no volume with key or path" in r.err, r
    assert cli("vol-delete", path).code == 0 and not os.path.exists(path)


def test_negative_capacity_is_a_value_not_an_option(cli, vms):
    assert cli("vol-create-as", "vms", "s.img", "1M", "--allocation", "0").code == 0
    r = cli("vol-resize", "s.img", "-512K", "vms", "--shrink")
    assert r.code == 0 and os.stat(vms / "s.img").st_size == 512 * 1024, r
    r = cli("vol-resize", "--shrink", "--capacity", "-256K", "--vol", "s.img", "vms")
    assert r.code == 0 and os.stat(vms / "s.img").st_size == 256 * 1024, r


def test_a_word_fills_the_first_free_place_as_in_virsh(cli, vms):
    """virsh 9 too: `vol-create-as a.img --pool P 1M` takes a.img for the pool."""
    r = cli("vol-create-as", "a.img", "--pool", "vms", "1M")
    assert r.code == 1 and "option --pool already seen" in r.err, r


def test_double_dash_ends_options(cli, vms):
    r = cli("pool-info", "--", "vms")
    assert r.code == 0 and "Name:           vms" in r.out, r


def test_help_group_listings_are_virshs():
    from cli.argspec import group_listing

    verbs = all_verbs()
    ours = group_listing([verbs[n] for n in ("pool-list", "pool-name")], "Storage Pool", "pool")
    assert ours.splitlines()[1] == "    pool-list                      list pools"
    assert virsh_help("pool").splitlines()[0] == ours.splitlines()[0]


def test_help_verb_and_dash_h(cli):
    page = cli("help", "pool-name").out
    assert "    pool-name <pool>" in page and "[--pool] <string>  pool name or uuid" in page
    assert cli("pool-name", "-h").out == page
    assert cli("help", "volume").out.startswith(" Storage Volume (help keyword 'volume'):")
    r = cli("help", "nothing")
    assert r.code == 1 and "doesn't exist" in r.err, r


def test_find_storage_pool_sources_reads_its_spec_file_in_place(cli, tmp_path):
    spec = tmp_path / "spec.xml"
    spec.write_text("<source><host name='pool.invalid'/></source>")
    r = cli("find-storage-pool-sources", "netfs")
    assert r.code == 1 and "needs a host" in r.err, r
    r = cli("find-storage-pool-sources", "netfs", str(spec))  # --srcSpec in its place
    assert r.code == 1 and "showmount" in r.err and "Unknown host" in r.err, r  # it asked


def test_every_verb_runs_a_handler_that_exists() -> None:
    """The verbs whose module is imported only when they run (pool_verbs, secret_verbs,
    volume_verbs) name a handler that is there: a misspelt one would fail only then."""
    lazy = 0
    for verb in all_verbs().values():
        handler = verb.handler
        resolve = getattr(handler, "resolve", None)
        if resolve is not None:
            lazy += 1
            handler = resolve()
        assert callable(handler) and handler.__name__.startswith(("cmd_", "handler")), verb.name
    assert lazy == 17
