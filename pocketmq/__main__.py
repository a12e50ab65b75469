from pocketmq.cli import main

main()
