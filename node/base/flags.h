// node/base/flags.h
//
// A small command-line parser for our binaries, in the form the product documents:
// `--name=value` (and `--name` for booleans). Unknown flags produce a warning and are
// ignored (product-semantics §14); malformed values are errors naming the flag.
//
//   FlagParser flags("unimeter", "Usage: ...");
//   int64_t port = 7001;
//   flags.AddInt("port", &port, "binary protocol port", 1, 65535);
//   absl::Status status = flags.Parse(argc, argv);   // prints help on --help
#ifndef UNIMETER_NODE_BASE_FLAGS_H_
#define UNIMETER_NODE_BASE_FLAGS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace unimeter {

class FlagParser {
 public:
  FlagParser(std::string program, std::string summary);

  // Registers a flag bound to `target`, which keeps its value when the flag is absent.
  void AddInt(const std::string& name, int64_t* target, const std::string& help, int64_t minimum,
              int64_t maximum);
  void AddString(const std::string& name, std::string* target, const std::string& help);
  void AddBool(const std::string& name, bool* target, const std::string& help);

  // Parses argv[1..]. Returns InvalidArgument naming the flag for a bad value or a
  // positional argument. Unknown flags go to warnings(). Sets help_requested() on --help.
  absl::Status Parse(int argc, const char* const* argv);

  // True when the flag appeared on the command line (or was set with Set()).
  bool WasSet(const std::string& name) const;
  // Sets a flag from text as if it had been given (environment fallbacks).
  absl::Status Set(const std::string& name, const std::string& value);

  bool help_requested() const { return help_requested_; }
  const std::vector<std::string>& warnings() const { return warnings_; }
  std::string Help() const;

 private:
  enum class Kind { kInt, kString, kBool };
  struct Flag {
    std::string name;
    Kind kind;
    void* target;
    std::string help;
    int64_t minimum = 0;
    int64_t maximum = 0;
    bool set = false;
  };
  Flag* Find(const std::string& name);

  std::string program_;
  std::string summary_;
  std::vector<Flag> flags_;
  std::vector<std::string> warnings_;
  bool help_requested_ = false;
};

// One entry of a `--peers=id:host:port,...` list.
struct PeerAddress {
  uint32_t id = 0;
  std::string host;
  uint16_t port = 0;
};

// Parses "id:host:port,id:host:port,..." (empty text = no peers). Ids must be 0..254
// and unique; ports 1..65535; hosts non-empty. Errors name the offending entry.
absl::StatusOr<std::vector<PeerAddress>> ParsePeerList(const std::string& text);

}  // namespace unimeter

#endif  // UNIMETER_NODE_BASE_FLAGS_H_
