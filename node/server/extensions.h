// node/server/extensions.h
//
// Our extension opcodes (wire-protocol-v1 §7.14; payloads in protocol/extensions.proto;
// docs/protocol.md). Existing v1 clients never send them.
#ifndef UNIMETER_NODE_SERVER_EXTENSIONS_H_
#define UNIMETER_NODE_SERVER_EXTENSIONS_H_

#include <cstdint>

#include "protocol/wire.h"

namespace unimeter {

inline constexpr uint8_t kOpcodeExtIngest = 0x80;
inline constexpr uint8_t kOpcodeExtRangeQuery = 0x81;
inline constexpr uint8_t kOpcodeExtEventsPage = 0x82;
inline constexpr uint8_t kOpcodeExtServerInfo = 0x83;

inline constexpr char kServerVersion[] = "0.1.0";

// Events scanned at most by one exact-range query.
inline constexpr size_t kRangeQueryEventsMax = 1'000'000;

inline protocol::ExtensionOpcodeSet ImplementedExtensions() {
  protocol::ExtensionOpcodeSet set;
  for (uint8_t opcode :
       {kOpcodeExtIngest, kOpcodeExtRangeQuery, kOpcodeExtEventsPage, kOpcodeExtServerInfo}) {
    set.Add(opcode);
  }
  return set;
}

}  // namespace unimeter

#endif  // UNIMETER_NODE_SERVER_EXTENSIONS_H_
