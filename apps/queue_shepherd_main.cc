// queue-shepherd: started by queued, one per job; see src/exec/shepherd.h.
#include <cstring>
#include <iostream>
#include <string>

#include "auth/psk_tls.h"
#include "exec/shepherd.h"

int main(int argc, char** argv) {
  queue::auth::InitOpenSsl(queue::auth::OpenSslUse::kPerJob);
  queue::exec::ShepherdOptions options;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--fd=", 0) == 0) {
      options.daemon_fd = std::stoi(arg.substr(5));
    } else if (arg.rfind("--adopt-fd=", 0) == 0) {
      options.adoption_fd = std::stoi(arg.substr(11));
    } else {
      std::cerr << "queue-shepherd: started by queued only (unknown argument " << arg << ")\n";
      return 2;
    }
  }
  return queue::exec::RunShepherd(options);
}
