#!/usr/bin/python3
# SPDX-License-Identifier: MIT
#
# luo_update: live-update a running libluo service, from Ansible, through
# luoctl's JSON output (man luoctl(1): manifest, check, update).
#
# DOC: what it does, in order
#
#   1. The pid: given, or read from a pid file (decimal digits only, at most
#      PID_FILE_MAX bytes); the process must exist.
#   2. Idempotence: the build-id of what runs (luoctl manifest on
#      /proc/PID/exe, which is the image that runs even if its file was
#      replaced) against the build-id of the target binary. Equal: "current",
#      not changed, nothing asked of the service. (Without a build-id on
#      either side, the files' SHA-256 are compared instead.)
#   3. The pre-switch verdict: luoctl check TARGET --pid PID --json, one
#      verdict per entry (component, handler, format). Check mode stops here:
#      "would-update" (changed) or, when the update would be refused, a
#      failure carrying the verdicts -- so a play can gate on it.
#   4. The update: luoctl update --pid PID TARGET --json. "done" is changed,
#      with the new liveupdate-number, the blackout and per-phase timings,
#      and the build-id that now runs (checked to be the target's). "refused"
#      and "rolled-back" are failures carrying luoctl's report; the service
#      keeps serving its old image. Any other outcome (no answer, no control
#      socket) is a failure with luoctl's message: "unknown".
#
# The service decides in step 4, not the check in step 3: luoctl check counts
# every entry of the old manifest as present, the service only those it
# hands over, so the check is the more conservative of the two. Outside
# check mode a refusing verdict does not stop the module from asking the
# service; the rolling-release role gates on check mode first.
#
# Everything luoctl prints is parsed as JSON and nothing of it is run; the
# pid file is read with a bound and must be digits only.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: luo_update
short_description: Live-update a running libluo service to a new binary
description:
  - Asks a running service built with libluo to replace its own binary without
    a restart (same pid, same sockets and client connections, its state handed
    over), through C(luoctl update --pid), and reports the outcome.
  - Idempotent. A service whose running image already has the target's
    build-id is C(ok), not changed, and is not asked anything.
  - In check mode, returns the pre-switch verdict per component (from
    C(luoctl check NEW --pid PID)) and changes nothing. A verdict that the
    update would be refused fails the task, so a play can gate a rollout on it.
  - A refusal (no common version for a mandatory component, the report names
    it) or a rollback (the new image failed before it was ready, the old one
    serves again) fails the task; the result carries luoctl's report.
  - Needs C(luoctl) on the managed host, and the right to update the service
    (its uid, or root), in its network namespace (luoctl connects to the
    abstract socket C(@luo-control.PID)).
version_added: "0.1.0"
author: luo
options:
  binary:
    description:
      - The new binary, on the managed host. Its absolute path is what the
        service executes. It must be in place before the task runs.
    type: path
    required: true
  pid:
    description:
      - The pid of the running service. One of I(pid) and I(pid_file) is needed.
    type: int
  pid_file:
    description:
      - A file holding the pid of the running service (decimal digits, an
        optional newline).
    type: path
  luoctl:
    description:
      - The luoctl program, as a path or as a name looked up in C(PATH).
    type: path
    default: luoctl
  timeout:
    description:
      - How long luoctl waits for the service's answer, in seconds (1 to 3600).
        The update goes on in the service whether or not luoctl waits for it.
    type: int
    default: 30
attributes:
  check_mode:
    support: full
    details: Returns the pre-switch verdicts; asks nothing of the service.
notes:
  - The previous binary is reported (I(previous_binary)); keep it on disk for
    a rollback, which is another live update, back to it.
  - See luoctl(1) (man/luoctl.1 in the luo tree) for the JSON this module reads,
    and dist/ansible/README.md for the role and the rolling-release playbook.
'''

EXAMPLES = r'''
- name: Is the running kvcache able to take the new build? (changes nothing)
  luo_update:
    pid_file: /run/kvcache.pid
    binary: /opt/kvcache/kvcache-2.1
  check_mode: true
  register: verdict

- name: Live-update it
  luo_update:
    pid_file: /run/kvcache.pid
    binary: /opt/kvcache/kvcache-2.1
    luoctl: /usr/local/bin/luoctl
    timeout: 60
  register: outcome

- name: Say how long the clients waited
  ansible.builtin.debug:
    msg: "liveupdate {{ outcome.liveupdate_number }}: blackout {{ outcome.blackout_ms }} ms"
  when: outcome is changed
'''

RETURN = r'''
result:
  description: >
    What happened: C(current) (already running the target build), C(would-update)
    or C(would-refuse) (check mode), C(done), C(refused), C(rolled-back), or
    C(unknown) (luoctl got no answer; look at the service).
  returned: always
  type: str
  sample: done
pid:
  description: The service's pid (the same before and after a live update).
  returned: when the pid was read
  type: int
  sample: 4242
binary:
  description: The target binary, absolute.
  returned: always
  type: str
  sample: /opt/kvcache/kvcache-2.1
previous_binary:
  description: What the service ran before the task (C(/proc/PID/exe)).
  returned: when the pid was read
  type: str
  sample: /opt/kvcache/kvcache-2.0
previous_build_id:
  description: The build-id of the image that ran before the task (hex), or null.
  returned: when the pid was read
  type: str
  sample: 1ff68633e61679296ba78c3047026e755ca84f60
target_build_id:
  description: The build-id of I(binary) (hex), or null.
  returned: always
  type: str
build_id:
  description: The build-id of the image that runs after the task.
  returned: when the pid was read
  type: str
proceed:
  description: The pre-switch verdict as a whole, true if the update would proceed.
  returned: when the check ran (not for C(current))
  type: bool
verdicts:
  description: >
    One entry per component, file handler and handover format, as
    C(luoctl check --json) gives them: kind, name, optional, both sides' read
    and write ranges, verdict (C(use), C(drop), C(refuse), C(new)), version, why.
  returned: when the check ran
  type: list
  elements: dict
  sample: [{"kind": "component", "name": "kvcache-store", "verdict": "use", "version": 1,
            "why": "version 1", "optional": false, "old_read": [1, 1], "old_write": [1, 1],
            "new_read": [1, 2], "new_write": [1, 2]}]
refused:
  description: The names of the entries whose verdict is C(refuse).
  returned: when the check ran
  type: list
  elements: str
liveupdate_number:
  description: The service's liveupdate-number after the update (how many it has had).
  returned: when an update was asked
  type: int
  sample: 1
blackout_ms:
  description: The blackout, from the first freeze in the old image to the new one ready.
  returned: when done
  type: float
  sample: 2.708
timings_ms:
  description: The blackout and its phases, freeze, serialize, exec, restore, ready (ms).
  returned: when done
  type: dict
report:
  description: >
    On a refusal, the service's negotiation report (kind, name, verdict,
    version, line), one entry per component.
  returned: when an update was asked
  type: list
  elements: dict
errno:
  description: The error the service answered (C(EPROTO) refused at negotiation, C(EUCLEAN) rolled back).
  returned: when an update was asked
  type: str
reason:
  description: The service's reason for a refusal or a rollback.
  returned: when an update was asked
  type: str
'''

import hashlib
import json
import os
import re

from ansible.module_utils.basic import AnsibleModule

# A pid file larger than this is not a pid file.
PID_FILE_MAX = 64
# pid_t is a 32-bit int; Linux's pid_max is at most 2^22.
PID_MAX = 2 ** 31 - 1
# luoctl's --timeout range.
TIMEOUT_MIN_S = 1
TIMEOUT_MAX_S = 3600
# Bytes read at a time when hashing a binary without a build-id.
HASH_CHUNK = 1 << 20

# The phases of the blackout, as luoctl update --json names them.
PHASES = ('freeze', 'serialize', 'exec', 'restore', 'ready')
# luoctl's exit statuses (luoctl(1), EXIT STATUS).
LUOCTL_OK = 0
LUOCTL_REFUSED = 1


def read_pid_file(module, path):
    try:
        with open(path, 'rb') as f:
            data = f.read(PID_FILE_MAX + 1)
    except OSError as e:
        module.fail_json(msg='pid file %s: %s' % (path, e.strerror), result='unknown')
    if len(data) > PID_FILE_MAX:
        module.fail_json(msg='pid file %s: longer than %d bytes' % (path, PID_FILE_MAX), result='unknown')
    text = data.decode('ascii', 'replace')
    if text.endswith('\n'):
        text = text[:-1]
    if not re.fullmatch(r'[1-9][0-9]{0,9}', text):
        module.fail_json(msg='pid file %s: not a pid: %r' % (path, text[:PID_FILE_MAX]), result='unknown')
    return int(text)


def luoctl_json(module, luoctl, args, ok_codes):
    """Run luoctl with ARGS (a list, no shell); parse its one JSON object."""
    rc, out, err = module.run_command([luoctl] + args, environ_update={'LC_ALL': 'C'})
    if rc not in ok_codes:
        return rc, None, err.strip() or out.strip()
    try:
        obj = json.loads(out)
    except ValueError as e:
        return rc, None, 'luoctl %s: output is not JSON (%s)' % (args[0], e)
    if not isinstance(obj, dict):
        return rc, None, 'luoctl %s: output is not a JSON object' % args[0]
    return rc, obj, err.strip()


def build_id(module, luoctl, path):
    rc, m, err = luoctl_json(module, luoctl, ['manifest', path, '--json'], (LUOCTL_OK,))
    if m is None:
        return None, err or 'luoctl manifest %s: exit %d' % (path, rc)
    bid = m.get('build_id')
    return (bid if isinstance(bid, str) else None), None


def sha256(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        while True:
            chunk = f.read(HASH_CHUNK)
            if not chunk:
                return h.hexdigest()
            h.update(chunk)


def same_build(exe, old_id, binary, new_id):
    if old_id and new_id:
        return old_id == new_id
    try:
        return sha256(exe) == sha256(binary)
    except OSError:
        return False


def components_summary(entries):
    """'kvcache-conns v1, kvcache-store v1': each component's verdict, short."""
    out = []
    for e in entries:
        if isinstance(e, dict) and e.get('kind') == 'component':
            v = e.get('verdict')
            out.append('%s %s' % (e.get('name'), 'v%s' % e.get('version') if v == 'use' else v))
    return ', '.join(out) or 'no component'


def main():
    module = AnsibleModule(
        argument_spec=dict(
            binary=dict(type='path', required=True),
            pid=dict(type='int'),
            pid_file=dict(type='path'),
            luoctl=dict(type='path', default='luoctl'),
            timeout=dict(type='int', default=30),
        ),
        mutually_exclusive=[('pid', 'pid_file')],
        required_one_of=[('pid', 'pid_file')],
        supports_check_mode=True,
    )
    p = module.params
    res = dict(changed=False, binary=p['binary'], result='unknown')

    def fail(msg, **kw):
        res.update(kw)
        module.fail_json(msg=msg, **res)

    if not TIMEOUT_MIN_S <= p['timeout'] <= TIMEOUT_MAX_S:
        fail('timeout must be %d..%d seconds' % (TIMEOUT_MIN_S, TIMEOUT_MAX_S))
    luoctl = p['luoctl']
    if os.sep not in luoctl:
        luoctl = module.get_bin_path(luoctl, required=True)
    binary = os.path.realpath(p['binary'])
    res['binary'] = binary
    if not os.path.isfile(binary):
        fail('%s: no such file' % binary)

    pid = p['pid'] if p['pid'] is not None else read_pid_file(module, p['pid_file'])
    if not 0 < pid <= PID_MAX:
        fail('pid %d out of range' % pid)
    res['pid'] = pid
    exe = '/proc/%d/exe' % pid
    try:
        res['previous_binary'] = os.readlink(exe)
    except OSError as e:
        fail('pid %d: %s (is the service running?)' % (pid, e.strerror))

    # 2. Idempotence.
    old_id, err = build_id(module, luoctl, exe)
    if err:
        fail('pid %d: cannot read its manifest: %s' % (pid, err))
    new_id, err = build_id(module, luoctl, binary)
    if err:
        fail('%s: cannot read its manifest: %s' % (binary, err))
    res.update(previous_build_id=old_id, target_build_id=new_id, build_id=old_id)
    if same_build(exe, old_id, binary, new_id):
        res.update(result='current', msg='pid %d already runs this build' % pid)
        module.exit_json(**res)

    # 3. The pre-switch verdict.
    rc, check, err = luoctl_json(module, luoctl, ['check', binary, '--pid', str(pid), '--json'],
                                 (LUOCTL_OK, LUOCTL_REFUSED))
    if check is None:
        fail('luoctl check: %s' % (err or 'exit %d' % rc))
    entries = check.get('entries')
    if not isinstance(entries, list):
        fail('luoctl check: no entries in its output')
    refused = [e.get('name') for e in entries if isinstance(e, dict) and e.get('verdict') == 'refuse']
    res.update(proceed=bool(check.get('proceed')) and rc == LUOCTL_OK, verdicts=entries, refused=refused)
    if module.check_mode:
        if res['proceed']:
            res.update(changed=True, result='would-update',
                       msg='pid %d -> %s: would proceed (%s)' % (pid, binary, components_summary(entries)))
            module.exit_json(**res)
        why = ['%s: %s' % (e.get('name'), e.get('why')) for e in entries
               if isinstance(e, dict) and e.get('verdict') == 'refuse']
        fail('pid %d -> %s: would be refused (%s)' % (pid, binary, '; '.join(why) or 'no common version'),
             result='would-refuse')

    # 4. The update.
    rc, upd, err = luoctl_json(module, luoctl, ['update', '--pid', str(pid), binary, '--timeout',
                                                str(p['timeout']), '--json'], (LUOCTL_OK, LUOCTL_REFUSED))
    if upd is None:
        fail('luoctl update: %s' % (err or 'exit %d' % rc), result='unknown')
    timings = upd.get('timings_ms') if isinstance(upd.get('timings_ms'), dict) else {}
    res.update(result=str(upd.get('result', 'unknown')), liveupdate_number=upd.get('liveupdate_number'),
               errno=upd.get('errno'), reason=upd.get('reason', ''),
               report=upd.get('report') if isinstance(upd.get('report'), list) else [])
    if rc != LUOCTL_OK or res['result'] != 'done':
        what = {'refused': 'refused, the old image keeps serving',
                'rolled-back': 'rolled back, the old image serves again'}.get(res['result'], res['result'])
        fail('pid %d -> %s: %s: %s' % (pid, binary, what, res['reason'] or upd.get('message', '')))

    res.update(changed=True, timings_ms=timings, blackout_ms=timings.get('blackout'))
    now_id, err = build_id(module, luoctl, exe)
    res['build_id'] = now_id
    if upd.get('new_pid') != pid:
        fail('pid %d: the answer came from pid %s' % (pid, upd.get('new_pid')), result='unknown')
    if err or not same_build(exe, now_id, binary, new_id):
        fail('pid %d: done, but its image is not %s (%s)' % (pid, binary, err or 'build-id %s' % now_id),
             result='unknown')
    res['msg'] = ('pid %d -> %s: done, liveupdate-number %s, blackout %s ms (%s)'
                  % (pid, binary, res['liveupdate_number'], res['blackout_ms'],
                     ', '.join('%s %s' % (k, timings.get(k)) for k in PHASES)))
    module.exit_json(**res)


if __name__ == '__main__':
    main()
