// node/base/check.h
//
// Always-on assertions for Unimeter (Debian's Abseil 20220623 has no CHECK).
//
//   UM_CHECK(cond)            aborts with file, line and the expression if cond is false.
//   UM_CHECK_EQ/NE/LT/LE/GT/GE(a, b)
//                             the same, also printing both operands.
//   UM_SIM_CHECK(cond)        an expensive cross-check, evaluated only in the simulator
//                             and in debug builds (UM_SIM_CHECKS defined).
//
// Checks guard our own invariants. Input from the network, a disk or a client is
// validated and rejected, never CHECKed. A process that embeds several simulated nodes
// can register a context hook that adds seed, node and virtual time to the report.
#ifndef UNIMETER_NODE_BASE_CHECK_H_
#define UNIMETER_NODE_BASE_CHECK_H_

#include <cstdint>
#include <sstream>
#include <string>

namespace unimeter {

// Called by a failing check before it aborts; returns extra context (may be empty).
// The simulator installs one that names the seed, node and virtual time.
using CheckContextHook = std::string (*)();
void SetCheckContextHook(CheckContextHook hook);

[[noreturn]] void CheckFailed(const char* file, int line, const char* expression,
                              const std::string& values);

namespace check_internal {

template <typename T>
void PrintOperand(std::ostream& out, const T& value) {
  if constexpr (std::is_same_v<T, uint8_t> || std::is_same_v<T, int8_t>) {
    out << static_cast<int>(value);
  } else if constexpr (requires { out << value; }) {
    out << value;
  } else {
    out << "<unprintable>";
  }
}

template <typename A, typename B>
std::string FormatOperands(const A& a, const B& b) {
  std::ostringstream out;
  PrintOperand(out, a);
  out << " vs ";
  PrintOperand(out, b);
  return out.str();
}

}  // namespace check_internal
}  // namespace unimeter

#define UM_CHECK(cond)                                                   \
  do {                                                                   \
    if (__builtin_expect(!(cond), 0)) {                                  \
      ::unimeter::CheckFailed(__FILE__, __LINE__, #cond, std::string()); \
    }                                                                    \
  } while (0)

#define UM_CHECK_OP_(a, b, op)                                                   \
  do {                                                                           \
    const auto& um_check_a_ = (a);                                               \
    const auto& um_check_b_ = (b);                                               \
    if (__builtin_expect(!(um_check_a_ op um_check_b_), 0)) {                    \
      ::unimeter::CheckFailed(                                                   \
          __FILE__, __LINE__, #a " " #op " " #b,                                 \
          ::unimeter::check_internal::FormatOperands(um_check_a_, um_check_b_)); \
    }                                                                            \
  } while (0)

#define UM_CHECK_EQ(a, b) UM_CHECK_OP_(a, b, ==)
#define UM_CHECK_NE(a, b) UM_CHECK_OP_(a, b, !=)
#define UM_CHECK_LT(a, b) UM_CHECK_OP_(a, b, <)
#define UM_CHECK_LE(a, b) UM_CHECK_OP_(a, b, <=)
#define UM_CHECK_GT(a, b) UM_CHECK_OP_(a, b, >)
#define UM_CHECK_GE(a, b) UM_CHECK_OP_(a, b, >=)

// Checks that a Status-returning expression succeeded (for start-up and tests).
#define UM_CHECK_OK(expr)                                                \
  do {                                                                   \
    const auto um_check_status_ = (expr);                                \
    if (__builtin_expect(!um_check_status_.ok(), 0)) {                   \
      ::unimeter::CheckFailed(__FILE__, __LINE__, #expr,                 \
                              std::string(um_check_status_.ToString())); \
    }                                                                    \
  } while (0)

#if defined(UM_SIM_CHECKS) || !defined(NDEBUG)
#define UM_SIM_CHECK(cond) UM_CHECK(cond)
#else
#define UM_SIM_CHECK(cond) \
  do {                     \
    (void)sizeof(cond);    \
  } while (0)
#endif

#endif  // UNIMETER_NODE_BASE_CHECK_H_
