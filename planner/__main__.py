"""python -m planner"""

from planner.launch import main

main()
