from maintkit.cli import main

if __name__ == "__main__":  # not when multiprocessing's fork server imports it as __mp_main__
    main()
