// node/env/node_service.h
//
// NodeService is what a host runs on one node: the real `unimeter` binary hosts one over
// a PosixEnv; the simulator hosts one per simulated node over a SimEnv and destroys it
// without warning to model a crash. The same service code runs in both.
//
// Contract for implementations:
//   - All state comes from the Env's disks and state store at Start(); nothing survives a
//     crash except what was made durable.
//   - The destructor does no I/O and touches no Env facility (a crash is a destructor
//     call; fibers were already unwound by the host, see node/env/fiber.h).
#ifndef UNIMETER_NODE_ENV_NODE_SERVICE_H_
#define UNIMETER_NODE_ENV_NODE_SERVICE_H_

#include <functional>
#include <memory>

#include "absl/status/status.h"
#include "node/env/env.h"

namespace unimeter {

class NodeService {
 public:
  virtual ~NodeService() = default;

  // Recovers from the Env's durable state and starts serving (timers, fibers,
  // listeners). An error (for example a corrupt data directory) stops the node.
  virtual absl::Status Start() = 0;
};

// Builds the service for one node lifetime over `env` (which outlives the service).
using NodeServiceFactory = std::function<std::unique_ptr<NodeService>(Env& env)>;

}  // namespace unimeter

#endif  // UNIMETER_NODE_ENV_NODE_SERVICE_H_
