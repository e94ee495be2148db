from deepgen.cli import main

if __name__ == "__main__":  # spawned worker processes (compare --jobs) import this module too
    raise SystemExit(main())
