import spot.app

spot.app.main()
