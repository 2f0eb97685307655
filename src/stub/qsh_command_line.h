// qsh's command line: ssh's grammar (SPEC §2), so that programs written to
// call ssh or rsh (rsync -e, git's GIT_SSH_COMMAND, GNU Parallel --ssh, MPI
// launchers) can call qsh unchanged.
//
//   qsh [options] [user@]host|+|ssh://[user@]host[:port] [options] [--] command words...
//
// Options as getopt reads them: combined (`-nT`), values attached or apart
// (`-p19371`, `-p 19371`, `-oBatchMode=yes`, `-o BatchMode=yes`), and, as in
// ssh, again after the host until the first word that is not one (or `--`).
// The command words are joined with spaces and run by `sh -c`, as ssh does.
//
//   -p PORT      the host entry host:PORT (also -o Port=PORT, ssh://host:PORT)
//   -l USER      USER (also user@host, -o User=USER) must be the caller
//   -t           a pty when stdin is a terminal; -tt a pty in any case; -T none
//   -n           stdin from /dev/null (ssh and rsh's meaning; `queue -n` keeps
//                the original's "no pty", which is qsh's default anyway)
//   -G           print the configuration (user, hostname, port) and exit 0,
//                without reaching a daemon: git asks this to learn that qsh
//                speaks ssh's options, and then passes a port with -p
//   -d QUEUE -j NAME -w -r -v   Queue's own (queue, job name, wait, batch, version)
//   ssh's other options are accepted and ignored: the flags -4 -6 -A -a -C -f
//   -g -K -k -M -N -q -s -V(version) -X -x -Y -y, and the valued -B -b -c -D
//   -E -e -F -I -i -J -L -m -O -o -P -Q -R -S -W.
#pragma once

#include <string>
#include <vector>

#include "stub/command_line.h"

namespace queue::stub {

Result<Invocation> ParseQshCommandLine(const std::vector<std::string>& args);

}  // namespace queue::stub
