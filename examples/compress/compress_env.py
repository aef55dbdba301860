#!/usr/bin/env python3
"""The example sweep's workload in a captured environment: `zlibmeter` is not on the
instance's own Python; only the environment herd built from your lock (sweep-env.toml:
`env = "auto"`) has it."""
import zlibmeter

zlibmeter.main()
