    # ��所有��任务
    await cp.stop()
    print("✓ Control Plane stopped")

# �行
asyncio.run(main())
