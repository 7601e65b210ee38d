# Checks that README.md contains samples/hello_fabric.cpp verbatim inside a ```cpp block.
file(READ ${README} readme)
file(READ ${SAMPLE} sample)
string(FIND "${readme}" "```cpp\n${sample}```" at)
if(at EQUAL -1)
  message(FATAL_ERROR "README.md's walkthrough differs from ${SAMPLE}; copy the sample into the README")
endif()
message(STATUS "README walkthrough matches ${SAMPLE}")
