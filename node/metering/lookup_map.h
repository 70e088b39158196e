// node/metering/lookup_map.h
//
// LookupMap is a hash map for point lookups only: it has no begin()/end() and no way to
// visit its elements, so its (per-process, ASLR-seeded) iteration order can never reach
// a decision, a digest or persisted bytes (simulation.md section 3). Anything that must be
// iterated lives in an ordered container beside it. This file is the one expected
// opt-out of the determinism lint for hash containers in node/metering.
#ifndef UNIMETER_NODE_METERING_LOOKUP_MAP_H_
#define UNIMETER_NODE_METERING_LOOKUP_MAP_H_

#include <cstddef>
#include <functional>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"

namespace unimeter::metering {

template <typename Key, typename Value>
class LookupMap {
 public:
  // The value stored under `key`, or nullptr.
  template <typename Query>
  Value* Find(const Query& key) {
    auto it = map_.find(key);
    return it == map_.end() ? nullptr : &it->second;
  }
  template <typename Query>
  const Value* Find(const Query& key) const {
    auto it = map_.find(key);
    return it == map_.end() ? nullptr : &it->second;
  }

  // Starts loading the memory a lookup of `key` reads (a hint; no effect on contents).
  template <typename Query>
  void Prefetch(const Query& key) const {
    map_.prefetch(key);
  }

  // Inserts `value` under `key` unless present. Returns the stored value and whether it
  // was inserted. The pointer is valid until the next insertion or erasure.
  std::pair<Value*, bool> Insert(const Key& key, Value value) {
    auto [it, inserted] = map_.try_emplace(key, std::move(value));
    return {&it->second, inserted};
  }

  // Removes `key`; returns whether it was present.
  template <typename Query>
  bool Erase(const Query& key) {
    return map_.erase(key) > 0;
  }

  size_t size() const { return map_.size(); }
  bool empty() const { return map_.empty(); }
  void Clear() { map_.clear(); }
  void Reserve(size_t count) { map_.reserve(count); }

 private:
  absl::flat_hash_map<Key, Value> map_;  // determinism-ok: lookup-only wrapper, never iterated
};

}  // namespace unimeter::metering

#endif  // UNIMETER_NODE_METERING_LOOKUP_MAP_H_
